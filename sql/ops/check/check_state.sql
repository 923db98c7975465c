-- The last complete check, and how many changed rows the scans recorded since.
SELECT s.fingerprint, s.full_needed, (SELECT count(*) FROM check_dirty) AS dirty,
       (SELECT count(*) FROM files) AS files
FROM check_state s;
