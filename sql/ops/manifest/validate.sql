-- What is wrong with the normalised export (manifest_norm, in file order): one row per kind of
-- problem, with the first row it occurs on, the column, the value and how many rows (or UIDs) have it.
WITH manifest_norm AS (
    SELECT rowid + 1 AS source_row, * FROM manifest_norm
),
bad_dates AS (
    SELECT source_row, 'patient_birth_date' AS col, patient_birth_date AS value FROM manifest_norm
    WHERE patient_birth_date IS NOT NULL
      AND NOT (regexp_full_match(patient_birth_date, '\d{8}') AND try_strptime(patient_birth_date, '%Y%m%d') IS NOT NULL)
    UNION ALL
    SELECT source_row, 'study_date', study_date FROM manifest_norm
    WHERE study_date IS NOT NULL
      AND NOT (regexp_full_match(study_date, '\d{8}') AND try_strptime(study_date, '%Y%m%d') IS NOT NULL)
),
dups AS (
    SELECT sop_instance_uid, count(*) AS n, list(source_row ORDER BY source_row)[1:3] AS rows_
    FROM manifest_norm WHERE sop_instance_uid IS NOT NULL
    GROUP BY 1 HAVING count(*) > 1
)
SELECT 'missing_uid' AS problem, min(source_row) AS source_row, 'sop_instance_uid' AS col,
       NULL AS value, count(*) AS n, NULL::BIGINT[] AS rows_
FROM manifest_norm WHERE sop_instance_uid IS NULL HAVING count(*) > 0
UNION ALL
SELECT 'duplicate_uid', min(rows_[1]), 'sop_instance_uid', arg_min(sop_instance_uid, rows_[1]), count(*),
       arg_min(rows_, rows_[1])
FROM dups HAVING count(*) > 0
UNION ALL
SELECT 'bad_date', min(source_row), arg_min(col, source_row), arg_min(value, source_row), count(*), NULL
FROM bad_dates HAVING count(*) > 0
UNION ALL
SELECT 'bad_state', min(source_row), 'state', arg_min(state, source_row), count(*), NULL
FROM manifest_norm WHERE state IS NOT NULL AND lower(state) NOT IN ('online', 'offline', 'deleted') HAVING count(*) > 0
ORDER BY source_row;
