-- The staged export (temp view manifest_stage, our column names, all VARCHAR) normalised as
-- pacscopy normalises headers: padding stripped, empty -> NULL, dates as YYYYMMDD, sex upper case,
-- state lower case. Invalid dates are kept as given, for validate.sql to name them as they are.
CREATE OR REPLACE TEMP MACRO manifest_value(v) AS nullif(trim(v, ' ' || chr(0) || chr(9)), '');
CREATE OR REPLACE TEMP MACRO manifest_yyyymmdd(v) AS
    regexp_replace(manifest_value(v), '^(\d{4})[-./]?(\d{2})[-./]?(\d{2})([ T].*)?$', '\1\2\3');
CREATE OR REPLACE TEMP MACRO manifest_date(v) AS
    CASE WHEN regexp_full_match(manifest_yyyymmdd(v), '\d{8}') AND try_strptime(manifest_yyyymmdd(v), '%Y%m%d') IS NOT NULL
         THEN manifest_yyyymmdd(v) ELSE manifest_value(v) END;
CREATE OR REPLACE TEMP TABLE manifest_norm AS
SELECT
    manifest_value(sop_instance_uid)     AS sop_instance_uid,
    manifest_value(study_instance_uid)   AS study_instance_uid,
    manifest_value(series_instance_uid)  AS series_instance_uid,
    manifest_value(sop_class_uid)        AS sop_class_uid,
    manifest_value(patient_id)           AS patient_id,
    manifest_value(issuer_of_patient_id) AS issuer_of_patient_id,
    manifest_value(patient_name)         AS patient_name,
    manifest_date(patient_birth_date)    AS patient_birth_date,
    upper(manifest_value(patient_sex))   AS patient_sex,
    manifest_value(accession_number)     AS accession_number,
    manifest_date(study_date)            AS study_date,
    manifest_value(modality)             AS modality,
    manifest_value(location)             AS location,
    lower(manifest_value(state))         AS state,
    source_row
FROM manifest_stage;
