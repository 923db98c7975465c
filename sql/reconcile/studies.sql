-- Per study: instances planned to send, recorded stored on $target, verified.
WITH fs AS (SELECT * FROM final_states($target))
SELECT
    study_instance_uid,
    any_value(patient_id) AS patient_id,
    count(*) FILTER (WHERE disposition IN ('send') OR final_state IN ('verified', 'stored_unverified', 'mismatch', 'missing_on_target', 'disputed')) AS planned,
    count(*) FILTER (WHERE final_state IN ('verified', 'stored_unverified', 'mismatch', 'missing_on_target', 'disputed')) AS stored,
    count(*) FILTER (WHERE final_state = 'verified') AS verified,
    count(*) FILTER (WHERE final_state LIKE 'excluded_%') AS excluded
FROM fs
WHERE study_instance_uid IS NOT NULL
GROUP BY 1
ORDER BY 1;
