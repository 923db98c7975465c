-- The manifest reconciliation's figures in one pass, by key (md5_number of the SOPInstanceUID: no join
-- on UID strings): every instance the old PACS's database knows, and every planned instance it does
-- not, with its final state for $target (verified, excluded with a reason, lost_no_file: a broken
-- link still unresolved, or the plan's own state from status_instances; the rules and reasons:
-- reconcile/manifest_problems.sql). Two kinds of rows:
--   kind 'state':    in_manifest, final_state, instances;
--   kind 'location': per location the old PACS recorded (the first $limit by missing, then name):
--                    instances it knows, found in a scanned file, missing (broken links, deleted ones
--                    apart), deleted, and verified on the target.
WITH fs AS (   -- the plan's instances with their states
    SELECT p.sop_key, p.disposition, k.final_state
    FROM (SELECT md5_number(sop_instance_uid) AS sop_key, disposition FROM plan) p
    JOIN (SELECT sop_key, final_state FROM status_instances WHERE target = $target) k USING (sop_key)
),
held AS (
    SELECT DISTINCT md5_number(sop_instance_uid) AS sop_key
    FROM files WHERE status IN ('ok', 'suspect', 'corrupt') AND sop_instance_uid IS NOT NULL
),
d AS (
    SELECT md5_number(sop_instance_uid) AS sop_key, action FROM decisions
),
r AS (
    SELECT m.location, m.state AS manifest_state, true AS in_manifest, h.sop_key IS NOT NULL AS has_file,
           CASE WHEN fs.final_state = 'verified' THEN 'verified'
                WHEN m.state = 'deleted' AND fs.disposition IS DISTINCT FROM 'send' THEN 'excluded_deleted'
                WHEN fs.final_state IS NOT NULL THEN fs.final_state
                WHEN d.action IS NOT NULL THEN 'excluded_decision'
                ELSE 'lost_no_file' END AS final_state
    FROM (SELECT sop_key, location, state FROM manifest) m
    LEFT JOIN fs USING (sop_key)
    LEFT JOIN held h USING (sop_key)
    LEFT JOIN d USING (sop_key)
    UNION ALL
    SELECT NULL, NULL, false, true, fs.final_state
    FROM fs
    WHERE EXISTS (SELECT 1 FROM manifest)
      AND NOT EXISTS (SELECT 1 FROM manifest m WHERE m.sop_key = fs.sop_key)
),
g AS (
    SELECT CASE WHEN grouping(loc) = 0 THEN 'location' ELSE 'state' END AS kind,
           in_manifest, final_state, loc AS location,
           count(*) AS instances,
           count(*) FILTER (WHERE has_file) AS found,
           count(*) FILTER (WHERE NOT has_file AND manifest_state IS DISTINCT FROM 'deleted') AS missing,
           count(*) FILTER (WHERE manifest_state = 'deleted') AS deleted,
           count(*) FILTER (WHERE final_state = 'verified') AS verified
    FROM (SELECT *, CASE WHEN in_manifest THEN coalesce(location, '(not recorded)') END AS loc FROM r)
    GROUP BY GROUPING SETS ((in_manifest, final_state), (loc))
    HAVING grouping(loc) = 1 OR loc IS NOT NULL
)
SELECT kind, in_manifest, final_state, location, instances, found, missing, deleted, verified
FROM g
QUALIFY kind = 'state' OR row_number() OVER (PARTITION BY kind ORDER BY missing DESC, location) <= $limit
ORDER BY kind DESC, in_manifest DESC, final_state, missing DESC, location;
