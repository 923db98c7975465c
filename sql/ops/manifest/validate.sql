-- What is wrong with the export just loaded into the manifest (inside the load's transaction, which
-- a problem rolls back): one row per kind of problem, with the first row it occurs on, the column,
-- the value and how many rows (or UIDs) have it. An empty sop_instance_uid was loaded as '' (a
-- normalised value is never ''). One scan for everything but duplicates; duplicates are found on
-- 64-bit hashes of the UIDs first, and only the UIDs whose hash repeats are grouped exactly.
WITH v AS MATERIALIZED (
    SELECT count(*) FILTER (WHERE sop_instance_uid = '') AS missing_n,
           min(source_row) FILTER (WHERE sop_instance_uid = '') AS missing_row,
           count(*) FILTER (WHERE bad_birth) AS birth_n,
           min(source_row) FILTER (WHERE bad_birth) AS birth_row,
           arg_min(patient_birth_date, source_row) FILTER (WHERE bad_birth) AS birth_value,
           count(*) FILTER (WHERE bad_study) AS study_n,
           min(source_row) FILTER (WHERE bad_study) AS study_row,
           arg_min(study_date, source_row) FILTER (WHERE bad_study) AS study_value,
           count(*) FILTER (WHERE bad_state) AS state_n,
           min(source_row) FILTER (WHERE bad_state) AS state_row,
           arg_min(state, source_row) FILTER (WHERE bad_state) AS state_value
    FROM (SELECT source_row, sop_instance_uid, patient_birth_date, study_date, state,
                 patient_birth_date IS NOT NULL AND NOT (regexp_full_match(patient_birth_date, '\d{8}')
                     AND try_strptime(patient_birth_date, '%Y%m%d') IS NOT NULL) AS bad_birth,
                 study_date IS NOT NULL AND NOT (regexp_full_match(study_date, '\d{8}')
                     AND try_strptime(study_date, '%Y%m%d') IS NOT NULL) AS bad_study,
                 state IS NOT NULL AND state NOT IN ('online', 'offline', 'deleted') AS bad_state
          FROM manifest)
),
repeated AS (
    SELECT hash(sop_instance_uid) AS h FROM manifest WHERE sop_instance_uid <> '' GROUP BY 1 HAVING count(*) > 1
),
dups AS (
    SELECT sop_instance_uid, count(*) AS n, list(source_row ORDER BY source_row)[1:3] AS rows_
    FROM manifest
    WHERE sop_instance_uid <> '' AND hash(sop_instance_uid) IN (SELECT h FROM repeated)
    GROUP BY 1 HAVING count(*) > 1
)
SELECT 'missing_uid' AS problem, missing_row AS source_row, 'sop_instance_uid' AS col,
       NULL AS value, missing_n AS n, NULL::BIGINT[] AS rows_
FROM v WHERE missing_n > 0
UNION ALL
SELECT 'duplicate_uid', min(rows_[1]), 'sop_instance_uid', arg_min(sop_instance_uid, rows_[1]), count(*),
       arg_min(rows_, rows_[1])
FROM dups HAVING count(*) > 0
UNION ALL
-- the first invalid date of either column (the birth date first on a row with both), counting both
SELECT 'bad_date', least(birth_row, study_row),
       CASE WHEN study_row IS NULL OR birth_row <= study_row THEN 'patient_birth_date' ELSE 'study_date' END,
       CASE WHEN study_row IS NULL OR birth_row <= study_row THEN birth_value ELSE study_value END,
       birth_n + study_n, NULL
FROM v WHERE birth_n + study_n > 0
UNION ALL
SELECT 'bad_state', state_row, 'state', state_value, state_n, NULL
FROM v WHERE state_n > 0
ORDER BY source_row;
