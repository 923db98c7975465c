-- A check of all checks completed (in its transaction): the changes it started from are
-- consumed, and what it depended on is remembered for the next one.
DELETE FROM check_dirty;
INSERT OR REPLACE INTO check_state (id, fingerprint, full_needed, checked_at, mode, why, changed, scope_files, replanned)
VALUES (1, $fingerprint, false, now()::TIMESTAMP, $mode, $why, $changed, $scope_files, $replanned);
