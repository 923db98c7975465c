-- Up to $per_check example files per check: worst severity first, one file per group (the shared
-- AccessionNumber, UID, ...) before a second file of the same group.
WITH ranked AS (
    SELECT check_id, severity, path, detail,
           CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END AS severity_rank,
           row_number() OVER (PARTITION BY check_id, group_key ORDER BY path) AS in_group
    FROM findings
)
SELECT check_id, severity, path, detail
FROM ranked
QUALIFY row_number() OVER (PARTITION BY check_id ORDER BY severity_rank, in_group, path) <= $per_check
ORDER BY check_id, severity_rank, in_group, path;
