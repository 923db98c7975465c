-- Studies, instances and gigabytes per study year (from StudyDate), sound files only
SELECT coalesce(substr(study_date, 1, 4), '????') AS year,
       count(DISTINCT study_instance_uid) AS studies,
       count(DISTINCT sop_instance_uid) AS instances,
       round(sum(size) / 1e9, 3) AS gigabytes
FROM files
WHERE status = 'ok'
GROUP BY ALL
ORDER BY year;
