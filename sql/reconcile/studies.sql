-- Per study: instances planned to send, recorded stored on $target (whatever their state now:
-- the target holds them), verified.
WITH fs AS (
    SELECT f.*, s.sop_instance_uid IS NOT NULL AS on_record
    FROM final_states($target) f
    LEFT JOIN stored_content s ON s.target = $target AND s.sop_instance_uid = f.sop_instance_uid
)
SELECT
    study_instance_uid,
    any_value(patient_id) AS patient_id,
    count(*) FILTER (WHERE disposition IN ('send') OR on_record) AS planned,
    count(*) FILTER (WHERE on_record) AS stored,
    count(*) FILTER (WHERE final_state = 'verified') AS verified,
    count(*) FILTER (WHERE final_state LIKE 'excluded_%') AS excluded
FROM fs
WHERE study_instance_uid IS NOT NULL
GROUP BY 1
ORDER BY 1;
