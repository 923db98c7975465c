-- The first $limit rows of the manifest reconciliation that keep it from being complete (broken links
-- first, then by location and SOPInstanceUID), with their reasons. Every instance the old PACS's
-- database knows, and every planned instance it does not ($manifest_rows: the manifest is not
-- empty), with its final state for $target: verified, excluded with a reason (excluded_deleted:
-- deleted in the database; excluded_decision: a broken link settled by decide), lost_no_file (a
-- broken link still unresolved), or the plan's own final state (final_states).
-- Run over slices of the books holding only the instances reconcile/manifest_first.sql chose
-- (pacscopy/send/status_counts.py sliced()): the same rows as over the whole books, for those.
WITH fs AS (
    SELECT sop_instance_uid, disposition, final_state, reason FROM final_states($target)
),
r AS (
    SELECT
        m.sop_instance_uid,
        m.location,
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
    LEFT JOIN decisions d USING (sop_instance_uid)
    UNION ALL
    SELECT fs.sop_instance_uid, NULL, fs.final_state, 'not in the old PACS''s database; ' || fs.reason
    FROM fs
    WHERE $manifest_rows
      AND NOT EXISTS (SELECT 1 FROM manifest m WHERE m.sop_instance_uid = fs.sop_instance_uid)
)
SELECT sop_instance_uid, location, final_state, reason
FROM r
WHERE final_state NOT IN ('verified') AND NOT starts_with(final_state, 'excluded_')
ORDER BY final_state <> 'lost_no_file', location, sop_instance_uid
LIMIT $limit;
