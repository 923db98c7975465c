-- Files and bytes per status and reason
SELECT status, coalesce(reason, '') AS reason, count(*) AS files,
       round(sum(size) / 1e6, 1) AS megabytes
FROM files
GROUP BY ALL
ORDER BY files DESC, status, reason;
