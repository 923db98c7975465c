-- The manifest at 5 million rows (issue 15): narrow keys computed once at load, joined instead of UIDs.
--
-- Every manifest check, the plan and the send queue join the manifest's 5 million rows with the
-- files' on SOPInstanceUID, strings of up to 64 characters: hash tables of strings, rebuilt by
-- each query. `pacscopy manifest load` now stores with each row
--   sop_key:  md5_number(sop_instance_uid), a 128-bit key (MD5: the same in every DuckDB version;
--             two UIDs sharing one is as likely as ~1e-25 at 5 million rows: the joins on it are
--             the joins on the UID);
--   cmp_hash: one 64-bit hash of the ten values manifest_compare compares (DuckDB's hash(): a
--             changed hash function after an upgrade only makes every row a candidate for the
--             exact comparisons below, it cannot hide a difference that the old one showed).
-- The files' side computes the same two from its own columns in the query (cheap: no join of
-- strings), through the macros below, so both sides always hash alike.

CREATE MACRO manifest_sop_key(uid) AS md5_number(uid);

-- The compared values, in manifest_compare's order; sex as the manifest stores it (upper case).
CREATE MACRO manifest_values_hash(patient_id, issuer_of_patient_id, patient_name, patient_birth_date, patient_sex,
                                  accession_number, study_date, study_instance_uid, series_instance_uid,
                                  sop_class_uid) AS
    hash(patient_id, issuer_of_patient_id, patient_name, patient_birth_date, upper(patient_sex), accession_number,
         study_date, study_instance_uid, series_instance_uid, sop_class_uid);

-- Only manifest load writes the manifest: NOT NULL (and no default once the rows loaded before
-- are filled) makes a row without its keys an error instead of a row silently matching no file.
ALTER TABLE manifest ADD COLUMN sop_key UHUGEINT NOT NULL DEFAULT 0;
ALTER TABLE manifest ADD COLUMN cmp_hash UBIGINT NOT NULL DEFAULT 0;
UPDATE manifest SET
    sop_key = manifest_sop_key(sop_instance_uid),
    cmp_hash = manifest_values_hash(patient_id, issuer_of_patient_id, patient_name, patient_birth_date, patient_sex,
                                    accession_number, study_date, study_instance_uid, series_instance_uid,
                                    sop_class_uid);
ALTER TABLE manifest ALTER COLUMN sop_key DROP DEFAULT;
ALTER TABLE manifest ALTER COLUMN cmp_hash DROP DEFAULT;

-- manifest_compare as 0014 defined it (same rows, same lists), on the stored keys: one scan of
-- files computes each file's two hashes and joins them with the manifest's (16 + 8 bytes a row,
-- no UID strings) to find the files whose values are not all the manifest's; those few are fetched
-- back from files (by path: an incremental check shadows files with a view) and manifest (by key)
-- and compared exactly.
CREATE OR REPLACE VIEW manifest_compare AS
WITH cand AS MATERIALIZED (
    SELECT f.path, m.sop_key
    FROM (SELECT path, manifest_sop_key(sop_instance_uid) AS k,
                 manifest_values_hash(patient_id, issuer_of_patient_id, patient_name, patient_birth_date, patient_sex,
                                      accession_number, study_date, study_instance_uid, series_instance_uid,
                                      sop_class_uid) AS h
          FROM files WHERE status IN ('ok', 'suspect', 'corrupt') AND sop_instance_uid IS NOT NULL) f
    JOIN (SELECT sop_key, cmp_hash FROM manifest) m ON m.sop_key = f.k
    WHERE f.h IS DISTINCT FROM m.cmp_hash
),
fc AS MATERIALIZED (  -- the candidates' files, then their manifest rows: each a semi join on the few candidates
    SELECT path, sop_instance_uid, patient_id, issuer_of_patient_id, patient_name, patient_birth_date,
           patient_sex, accession_number, study_date, study_instance_uid, series_instance_uid, sop_class_uid
    FROM files WHERE path IN (SELECT path FROM cand)
),
mc AS MATERIALIZED (
    SELECT sop_key, sop_instance_uid, state, location, patient_id, issuer_of_patient_id, patient_name,
           patient_birth_date, patient_sex, accession_number, study_date, study_instance_uid, series_instance_uid,
           sop_class_uid
    FROM manifest WHERE sop_key IN (SELECT sop_key FROM cand)
),
j AS (
    SELECT f.path, f.sop_instance_uid, m.state, m.location,
           f.patient_id AS f_patient_id, m.patient_id AS m_patient_id,
           f.issuer_of_patient_id AS f_issuer, m.issuer_of_patient_id AS m_issuer,
           f.patient_name AS f_patient_name, m.patient_name AS m_patient_name,
           f.patient_birth_date AS f_birth, m.patient_birth_date AS m_birth,
           f.patient_sex AS f_sex, m.patient_sex AS m_sex,
           f.accession_number AS f_accession, m.accession_number AS m_accession,
           f.study_date AS f_study_date, m.study_date AS m_study_date,
           f.study_instance_uid AS f_study, m.study_instance_uid AS m_study,
           f.series_instance_uid AS f_series, m.series_instance_uid AS m_series,
           f.sop_class_uid AS f_class, m.sop_class_uid AS m_class
    FROM cand c
    JOIN fc f ON f.path = c.path
    JOIN mc m ON m.sop_key = c.sop_key
    WHERE m.sop_instance_uid = f.sop_instance_uid
),
d AS (
    SELECT *,
           m_patient_id IS NOT NULL AND m_patient_id IS DISTINCT FROM f_patient_id AS d_patient_id,
           m_issuer IS NOT NULL AND m_issuer IS DISTINCT FROM f_issuer AS d_issuer,
           m_patient_name IS NOT NULL AND m_patient_name IS DISTINCT FROM f_patient_name AS raw_name,
           m_birth IS NOT NULL AND m_birth IS DISTINCT FROM f_birth AS d_birth,
           m_sex IS NOT NULL AND m_sex IS DISTINCT FROM upper(f_sex) AS d_sex,
           m_accession IS NOT NULL AND m_accession IS DISTINCT FROM f_accession AS d_accession,
           m_study_date IS NOT NULL AND m_study_date IS DISTINCT FROM f_study_date AS d_study_date,
           m_study IS NOT NULL AND m_study IS DISTINCT FROM f_study AS d_study,
           m_series IS NOT NULL AND m_series IS DISTINCT FROM f_series AS d_series,
           m_class IS NOT NULL AND m_class IS DISTINCT FROM f_class AS d_class
    FROM j
),
n AS (
    -- names that differ only in case, spacing or trailing '^' are no difference (norm_name)
    SELECT *, raw_name AND norm_name(m_patient_name) IS DISTINCT FROM norm_name(f_patient_name) AS d_name
    FROM d
)
SELECT
    path,
    sop_instance_uid,
    state,
    location,
    list_filter([
        CASE WHEN d_patient_id THEN {'attribute': 'PatientID', 'file': f_patient_id, 'manifest': m_patient_id} END,
        CASE WHEN d_issuer THEN {'attribute': 'IssuerOfPatientID', 'file': f_issuer, 'manifest': m_issuer} END,
        CASE WHEN d_name THEN {'attribute': 'PatientName', 'file': f_patient_name, 'manifest': m_patient_name} END,
        CASE WHEN d_birth THEN {'attribute': 'PatientBirthDate', 'file': f_birth, 'manifest': m_birth} END,
        CASE WHEN d_sex THEN {'attribute': 'PatientSex', 'file': f_sex, 'manifest': m_sex} END,
        CASE WHEN d_accession THEN {'attribute': 'AccessionNumber', 'file': f_accession, 'manifest': m_accession} END,
        CASE WHEN d_study_date THEN {'attribute': 'StudyDate', 'file': f_study_date, 'manifest': m_study_date} END
    ], lambda x: x IS NOT NULL) AS demographics,
    list_filter([
        CASE WHEN d_study THEN {'attribute': 'StudyInstanceUID', 'file': f_study, 'manifest': m_study} END,
        CASE WHEN d_series THEN {'attribute': 'SeriesInstanceUID', 'file': f_series, 'manifest': m_series} END,
        CASE WHEN d_class THEN {'attribute': 'SOPClassUID', 'file': f_class, 'manifest': m_class} END
    ], lambda x: x IS NOT NULL) AS uids
FROM n
WHERE d_patient_id OR d_issuer OR d_name OR d_birth OR d_sex OR d_accession OR d_study_date
   OR d_study OR d_series OR d_class;
