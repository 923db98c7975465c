-- The SOPInstanceUIDs of the first $limit rows of the manifest reconciliation that keep it from being
-- complete (broken links first, then by location and SOPInstanceUID), found by key as in
-- reconcile/manifest_counts.sql; their rows and reasons are then evaluated for these instances only
-- (reconcile/manifest_problems.sql over slices of the books).
WITH fs AS (
    SELECT p.sop_key, p.sop_instance_uid, p.disposition, k.final_state
    FROM (SELECT md5_number(sop_instance_uid) AS sop_key, sop_instance_uid, disposition FROM plan) p
    JOIN (SELECT sop_key, final_state FROM status_instances WHERE target = $target) k USING (sop_key)
),
d AS (
    SELECT md5_number(sop_instance_uid) AS sop_key, action FROM decisions
),
r AS (
    SELECT m.sop_instance_uid, m.location,
           CASE WHEN fs.final_state = 'verified' THEN 'verified'
                WHEN m.state = 'deleted' AND fs.disposition IS DISTINCT FROM 'send' THEN 'excluded_deleted'
                WHEN fs.final_state IS NOT NULL THEN fs.final_state
                WHEN d.action IS NOT NULL THEN 'excluded_decision'
                ELSE 'lost_no_file' END AS final_state
    FROM (SELECT sop_key, sop_instance_uid, location, state FROM manifest) m
    LEFT JOIN fs USING (sop_key)
    LEFT JOIN d USING (sop_key)
    UNION ALL
    SELECT fs.sop_instance_uid, NULL, fs.final_state
    FROM fs
    WHERE EXISTS (SELECT 1 FROM manifest)
      AND NOT EXISTS (SELECT 1 FROM manifest m WHERE m.sop_key = fs.sop_key)
)
SELECT sop_instance_uid
FROM r
WHERE final_state NOT IN ('verified') AND NOT starts_with(final_state, 'excluded_')
ORDER BY final_state <> 'lost_no_file', location, sop_instance_uid
LIMIT $limit;
