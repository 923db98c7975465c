-- The index at hospital scale (issues 12 and 15).

-- manifest_compare, cheaply: only the files whose header differs from the manifest's row.
-- 0008's view joined the files' and the manifest's wide rows (ten strings each) and built two
-- lists of structs for every one of the millions of joined rows (normalising both names with
-- regular expressions) before the checks and the plan kept the few that differ: a hash join that
-- spilled gigabytes at 5 million rows. Here a narrow join first keeps the files whose compared
-- values are not all equal to the manifest's (one 64-bit hash of the ten values on each side:
-- equal hashes, equal values), then the exact comparisons run on those rows only, joined back by
-- path, and the lists are built for the rows that really differ. Same columns, same lists; a file
-- that agrees with the manifest has no row (every reader LEFT JOINs it or keeps rows with differences).
CREATE OR REPLACE VIEW manifest_compare AS
WITH cand AS MATERIALIZED (
    SELECT f.path
    FROM (SELECT sop_instance_uid, path,
                 hash(patient_id, issuer_of_patient_id, patient_name, patient_birth_date, upper(patient_sex),
                      accession_number, study_date, study_instance_uid, series_instance_uid, sop_class_uid) AS h
          FROM files WHERE status IN ('ok', 'suspect', 'corrupt') AND sop_instance_uid IS NOT NULL) f
    JOIN (SELECT sop_instance_uid,
                 hash(patient_id, issuer_of_patient_id, patient_name, patient_birth_date, patient_sex,
                      accession_number, study_date, study_instance_uid, series_instance_uid, sop_class_uid) AS h
          FROM manifest) m USING (sop_instance_uid)
    WHERE f.h <> m.h
),
fc AS MATERIALIZED (  -- the candidates' files, then their manifest rows: each a semi join on the few candidates
    SELECT path, sop_instance_uid, patient_id, issuer_of_patient_id, patient_name, patient_birth_date,
           patient_sex, accession_number, study_date, study_instance_uid, series_instance_uid, sop_class_uid
    FROM files WHERE path IN (SELECT path FROM cand)
),
mc AS MATERIALIZED (
    SELECT sop_instance_uid, state, location, patient_id, issuer_of_patient_id, patient_name, patient_birth_date,
           patient_sex, accession_number, study_date, study_instance_uid, series_instance_uid, sop_class_uid
    FROM manifest WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM fc)
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
    FROM fc f
    JOIN mc m ON m.sop_instance_uid = f.sop_instance_uid
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
    WHERE (m_patient_id IS NOT NULL AND m_patient_id IS DISTINCT FROM f_patient_id)
       OR (m_issuer IS NOT NULL AND m_issuer IS DISTINCT FROM f_issuer)
       OR (m_patient_name IS NOT NULL AND m_patient_name IS DISTINCT FROM f_patient_name)
       OR (m_birth IS NOT NULL AND m_birth IS DISTINCT FROM f_birth)
       OR (m_sex IS NOT NULL AND m_sex IS DISTINCT FROM upper(f_sex))
       OR (m_accession IS NOT NULL AND m_accession IS DISTINCT FROM f_accession)
       OR (m_study_date IS NOT NULL AND m_study_date IS DISTINCT FROM f_study_date)
       OR (m_study IS NOT NULL AND m_study IS DISTINCT FROM f_study)
       OR (m_series IS NOT NULL AND m_series IS DISTINCT FROM f_series)
       OR (m_class IS NOT NULL AND m_class IS DISTINCT FROM f_class)
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
