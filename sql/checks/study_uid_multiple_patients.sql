-- One StudyInstanceUID under different patients (PatientID, or name and birth date)
WITH g AS (
    SELECT study_instance_uid,
           list(DISTINCT coalesce(patient_id, '(none)') ORDER BY coalesce(patient_id, '(none)')) AS ids,
           count(DISTINCT coalesce(patient_id, '')) AS n_ids,
           count(DISTINCT norm_name(patient_name)) AS n_names,
           count(DISTINCT patient_birth_date) AS n_births
    FROM instances
    WHERE study_instance_uid IS NOT NULL
    GROUP BY 1
    HAVING count(DISTINCT coalesce(patient_id, '')) > 1
        OR count(DISTINCT norm_name(patient_name)) > 1
        OR count(DISTINCT patient_birth_date) > 1
)
SELECT 'error' AS severity, i.path, i.sop_instance_uid, g.study_instance_uid AS group_key,
       'StudyInstanceUID ' || g.study_instance_uid || ' under ' || g.n_ids || ' PatientIDs ('
           || array_to_string(g.ids, ', ') || '), ' || g.n_names || ' names, ' || g.n_births || ' birth dates' AS detail,
       NULL::BOOLEAN AS recoverable
FROM instances i JOIN g USING (study_instance_uid)
