-- Per study: instances planned to send, recorded stored on the target (whatever their state now:
-- the target holds them), verified (temp table reconcile_final: reconcile/materialise.sql).
SELECT
    study_instance_uid,
    any_value(patient_id) AS patient_id,
    count(*) FILTER (WHERE disposition IN ('send') OR on_record) AS planned,
    count(*) FILTER (WHERE on_record) AS stored,
    count(*) FILTER (WHERE final_state = 'verified') AS verified,
    count(*) FILTER (WHERE final_state LIKE 'excluded_%') AS excluded
FROM reconcile_final
WHERE study_instance_uid IS NOT NULL
GROUP BY 1
ORDER BY 1;
