-- Corrupt, suspect (lost block) and unreadable files; recoverable when an intact copy of the instance exists
SELECT
    CASE WHEN good.path IS NULL THEN 'error' ELSE 'warning' END AS severity,
    f.path,
    f.sop_instance_uid,
    f.reason AS group_key,
    f.status || ': ' || coalesce(f.reason, '') || coalesce(' (' || f.detail || ')', '')
        || coalesce('; intact copy: ' || good.path, '') AS detail,
    good.path IS NOT NULL AS recoverable
FROM files f
LEFT JOIN (
    SELECT sop_instance_uid, min(path) AS path FROM files WHERE status = 'ok' GROUP BY 1
) good ON good.sop_instance_uid = f.sop_instance_uid
WHERE f.status IN ('corrupt', 'suspect', 'unreadable')
