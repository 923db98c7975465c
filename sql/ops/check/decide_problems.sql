-- What is wrong with the staged decisions, first line first: `twice` (one SOPInstanceUID
-- decided on two lines), `unknown` (neither a file nor the manifest holds it),
-- `manifest_only_send` (only the old PACS's database knows it: skip or hold, never send),
-- `not_a_copy` (path is not a file of the instance), `path_without_send`, `path_missing`
-- (that copy has vanished).
WITH problems AS (
    SELECT 'twice' AS kind, b.line, a.line AS other_line, b.sop_instance_uid, a.action AS other_action,
           b.action, b.path
    FROM decide_stage a JOIN decide_stage b ON a.sop_instance_uid = b.sop_instance_uid AND a.line < b.line
    UNION ALL
    SELECT CASE WHEN m.sop_instance_uid IS NULL THEN 'unknown' ELSE 'manifest_only_send' END, s.line, NULL,
           s.sop_instance_uid, NULL, s.action, s.path
    FROM decide_stage s
    ANTI JOIN files f ON f.sop_instance_uid = s.sop_instance_uid
    LEFT JOIN (SELECT DISTINCT sop_instance_uid FROM manifest) m ON m.sop_instance_uid = s.sop_instance_uid
    WHERE m.sop_instance_uid IS NULL OR s.action = 'send'
    UNION ALL
    SELECT 'path_without_send', s.line, NULL, s.sop_instance_uid, NULL, s.action, s.path
    FROM decide_stage s WHERE s.path IS NOT NULL AND s.action <> 'send'
    UNION ALL
    SELECT CASE WHEN f.path IS NULL THEN 'not_a_copy' ELSE 'path_missing' END, s.line, NULL, s.sop_instance_uid,
           NULL, s.action, s.path
    FROM decide_stage s LEFT JOIN files f ON f.path = s.path AND f.sop_instance_uid = s.sop_instance_uid
    WHERE s.path IS NOT NULL AND (f.path IS NULL OR f.status = 'missing')
)
SELECT kind, line, other_line, sop_instance_uid, other_action, action, path FROM problems
ORDER BY line, other_line NULLS LAST, kind
LIMIT 1;
