-- One PatientID with different PatientName, PatientBirthDate or PatientSex (case, whitespace, trailing ^ ignored; an empty value is no value); variants with counts
-- A variant found only on some copies of instances whose other copies agree with the rest
-- (conflicting duplicates) flags those instances, not every instance of the patient.
WITH p AS (
    SELECT patient_id,
           count(DISTINCT norm_name(patient_name)) AS names,
           count(DISTINCT patient_birth_date) AS births,
           count(DISTINCT nullif(upper(trim(patient_sex)), '')) AS sexes
    FROM instances
    WHERE patient_id IS NOT NULL
    GROUP BY 1
    HAVING count(DISTINCT norm_name(patient_name)) > 1 OR count(DISTINCT patient_birth_date) > 1
        OR count(DISTINCT nullif(upper(trim(patient_sex)), '')) > 1
),
variants AS (
    SELECT patient_id,
           string_agg(coalesce(norm_name(patient_name), '(no name)') || ' / ' || coalesce(patient_birth_date, '(no birth date)')
                      || CASE WHEN sexes > 1 THEN ' / ' || coalesce(sex, '(no sex)') ELSE '' END
                      || ' (' || n || ')', '; ' ORDER BY n DESC, norm_name(patient_name), sex) AS v
    FROM (
        SELECT i.patient_id, norm_name(i.patient_name) AS patient_name, i.patient_birth_date,
               CASE WHEN p.sexes > 1 THEN nullif(upper(trim(i.patient_sex)), '') END AS sex, p.sexes, count(*) AS n
        FROM instances i JOIN p USING (patient_id)
        GROUP BY ALL
    )
    GROUP BY 1
),
per_sop AS (
    -- the demographics variants each instance of these patients carries over its copies
    SELECT i.patient_id, i.sop_instance_uid,
           count(DISTINCT (norm_name(i.patient_name), i.patient_birth_date,
                           CASE WHEN p.sexes > 1 THEN nullif(upper(trim(i.patient_sex)), '') END)) AS n_variants,
           any_value((norm_name(i.patient_name), i.patient_birth_date,
                      CASE WHEN p.sexes > 1 THEN nullif(upper(trim(i.patient_sex)), '') END)) AS variant
    FROM instances i JOIN p USING (patient_id)
    GROUP BY ALL
),
scope AS (
    -- 'patient' when instances whose copies agree carry more than one variant; else only
    -- the instances whose copies disagree (already duplicate_conflict) are concerned
    SELECT patient_id,
           count(DISTINCT variant) FILTER (WHERE n_variants = 1) > 1 AS whole_patient
    FROM per_sop GROUP BY 1
)
SELECT 'error' AS severity, i.path, i.sop_instance_uid, i.patient_id AS group_key,
       'PatientID ' || i.patient_id || ' has ' || p.names || ' names and ' || p.births || ' birth dates'
       || CASE WHEN p.sexes > 1 THEN ' and ' || p.sexes || ' values of PatientSex' ELSE '' END
       || CASE WHEN s.whole_patient THEN '' ELSE ' (only among conflicting copies of this instance)' END
       || ': ' || v.v AS detail,
       NULL::BOOLEAN AS recoverable
FROM instances i JOIN p USING (patient_id) JOIN variants v USING (patient_id) JOIN scope s USING (patient_id)
JOIN per_sop ps USING (patient_id, sop_instance_uid)
WHERE s.whole_patient OR ps.n_variants > 1
