-- Record (or replace) the user's decision on one instance.
INSERT OR REPLACE INTO decisions (sop_instance_uid, action, path, note, decided_at, decided_by)
VALUES ($sop, $action, $path, $note, now()::TIMESTAMP, $by);
