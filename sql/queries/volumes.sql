-- Files per restored volume and status
SELECT volume, status, count(*) AS files, round(sum(size) / 1e6, 1) AS megabytes
FROM files
GROUP BY ALL
ORDER BY volume, files DESC;
