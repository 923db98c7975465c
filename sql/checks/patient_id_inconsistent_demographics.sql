-- One PatientID with different PatientName, PatientBirthDate or PatientSex (case, whitespace, trailing ^ ignored; an empty value is no value); variants with counts
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
)
SELECT 'error' AS severity, i.path, i.sop_instance_uid, i.patient_id AS group_key,
       'PatientID ' || i.patient_id || ' has ' || p.names || ' names and ' || p.births || ' birth dates'
       || CASE WHEN p.sexes > 1 THEN ' and ' || p.sexes || ' values of PatientSex' ELSE '' END || ': ' || v.v AS detail,
       NULL::BOOLEAN AS recoverable
FROM instances i JOIN p USING (patient_id) JOIN variants v USING (patient_id)
