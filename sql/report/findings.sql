-- Findings per check: affected files and instances, the worst severity, and files per severity.
SELECT check_id,
       CASE min(CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END)
           WHEN 0 THEN 'error' WHEN 1 THEN 'warning' ELSE 'info' END AS severity,
       count(DISTINCT path) AS files,
       count(DISTINCT sop_instance_uid) AS instances,
       count(DISTINCT path) FILTER (WHERE severity = 'error') AS errors,
       count(DISTINCT path) FILTER (WHERE severity = 'warning') AS warnings,
       count(DISTINCT path) FILTER (WHERE severity = 'info') AS infos
FROM findings
GROUP BY check_id
ORDER BY min(CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END), files DESC, check_id;
