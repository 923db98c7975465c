-- Per study: instances planned to send, recorded stored on the target (whatever their state now:
-- the target holds them), verified, excluded. One streaming pass: the plan's instances joined by key
-- (md5_number of the SOPInstanceUID) to their states in status_instances (kept, or evaluated in full
-- into a temporary table of that name), and to the instances the target's transfers stored.
WITH k AS (
    SELECT sop_key, final_state = 'verified' AS verified, starts_with(final_state, 'excluded_') AS excluded
    FROM status_instances
    WHERE target = $target AND (final_state = 'verified' OR starts_with(final_state, 'excluded_'))
),
st AS (   -- stored at least once (stored_content's instances, without its window over the transfers)
    SELECT DISTINCT sop_instance_uid FROM transfers
    WHERE target = $target AND outcome IN ('stored', 'warning')
)
SELECT
    p.study_instance_uid,
    any_value(p.patient_id) AS patient_id,
    count(*) FILTER (WHERE p.disposition = 'send' OR st.sop_instance_uid IS NOT NULL) AS planned,
    count(st.sop_instance_uid) AS stored,
    count(*) FILTER (WHERE k.verified) AS verified,
    count(*) FILTER (WHERE k.excluded) AS excluded
FROM (SELECT sop_instance_uid, study_instance_uid, patient_id, disposition FROM plan
      WHERE study_instance_uid IS NOT NULL) p
LEFT JOIN k ON k.sop_key = md5_number(p.sop_instance_uid)
LEFT JOIN st ON st.sop_instance_uid = p.sop_instance_uid
GROUP BY 1
ORDER BY 1;
