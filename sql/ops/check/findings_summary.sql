-- Findings per check and severity, for the check summary.
SELECT check_id, severity, count(*) AS files, count(DISTINCT sop_instance_uid) AS instances
FROM findings
GROUP BY ALL
ORDER BY check_id, severity;
