-- Files and bytes per status, for the scan summary.
SELECT status, count(*) AS files, coalesce(sum(size), 0) AS bytes
FROM files
GROUP BY status
ORDER BY files DESC, status;
