-- Every instance the old PACS's database knows, and every planned instance it does not, with its
-- final state for $target: verified, excluded with a reason (excluded_deleted: deleted in the
-- database; excluded_decision: a broken link settled by decide), lost_no_file (a broken link
-- still unresolved), or the plan's own final state (final_states).
-- (fs: temp table reconcile_final, the final states reconcile computed once: reconcile/materialise.sql)
WITH fs AS (
    SELECT sop_instance_uid, disposition, final_state, reason FROM reconcile_final
),
held AS (
    SELECT DISTINCT sop_instance_uid FROM files WHERE status IN ('ok', 'suspect', 'corrupt')
)
SELECT
    m.sop_instance_uid,
    m.location,
    m.state AS manifest_state,
    true AS in_manifest,
    h.sop_instance_uid IS NOT NULL AS has_file,
    CASE WHEN fs.final_state = 'verified' THEN 'verified'
         WHEN m.state = 'deleted' AND fs.disposition IS DISTINCT FROM 'send' THEN 'excluded_deleted'
         WHEN fs.final_state IS NOT NULL THEN fs.final_state
         WHEN d.action IS NOT NULL THEN 'excluded_decision'
         ELSE 'lost_no_file' END AS final_state,
    CASE WHEN fs.final_state = 'verified' THEN fs.reason
         WHEN m.state = 'deleted' AND fs.disposition IS DISTINCT FROM 'send'
              THEN 'deleted in the old PACS''s database'
                   || CASE WHEN fs.sop_instance_uid IS NULL THEN '; no file holds it'
                           ELSE '; its file is not sent (' || fs.disposition || ')' END
         WHEN fs.final_state IS NOT NULL THEN fs.reason
         WHEN d.action IS NOT NULL THEN 'decision (' || d.action || '): ' || d.note
         ELSE 'broken link: no scanned file holds it (location ' || coalesce(m.location, 'not recorded') || ', '
              || coalesce(m.state, 'state not recorded') || '): restore and scan that volume, or decide' END AS reason
FROM manifest m
LEFT JOIN fs USING (sop_instance_uid)
LEFT JOIN held h USING (sop_instance_uid)
LEFT JOIN decisions d USING (sop_instance_uid)
UNION ALL
SELECT fs.sop_instance_uid, NULL, NULL, false, true, fs.final_state,
       'not in the old PACS''s database; ' || fs.reason
FROM fs
WHERE EXISTS (SELECT 1 FROM manifest)
  AND NOT EXISTS (SELECT 1 FROM manifest m WHERE m.sop_instance_uid = fs.sop_instance_uid)
