-- The old PACS's own database export ("the manifest"): what it knew, where, and its corrections.

-- One row per SOPInstanceUID the old PACS's database knows; replaced as a whole by `pacscopy manifest load`.
-- Values as pacscopy normalises headers: padding stripped, empty -> NULL, dates as YYYYMMDD.
CREATE TABLE manifest (
    sop_instance_uid     VARCHAR NOT NULL,
    study_instance_uid   VARCHAR,
    series_instance_uid  VARCHAR,
    sop_class_uid        VARCHAR,
    patient_id           VARCHAR,
    issuer_of_patient_id VARCHAR,
    patient_name         VARCHAR,
    patient_birth_date   VARCHAR,            -- YYYYMMDD
    patient_sex          VARCHAR,
    accession_number     VARCHAR,
    study_date           VARCHAR,            -- YYYYMMDD
    modality             VARCHAR,
    location             VARCHAR,            -- where the old PACS stored it: a path, a volume or tape label
    state                VARCHAR,            -- online | offline | deleted (NULL: not recorded)
    source_row           BIGINT              -- the row in the export (1 = first data row)
);

CREATE SEQUENCE manifest_load_id_seq;

-- Every successful `pacscopy manifest load`: when, from what, how many rows.
CREATE TABLE manifest_loads (
    load_id     INTEGER PRIMARY KEY DEFAULT nextval('manifest_load_id_seq'),
    loaded_at   TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP,
    source      VARCHAR NOT NULL,            -- the file, as an absolute path
    format      VARCHAR NOT NULL,            -- csv | parquet | json
    rows        BIGINT NOT NULL,
    columns     VARCHAR                      -- the --columns mapping used (ours=theirs, ...), NULL: none
);

-- How the plan treats what the manifest says (`pacscopy check --manifest-policy RULE=ACTION`);
-- a rule without a row has its default (deleted=skip, orphan=hold, demographics=rewrite, uid_mismatch=hold).
CREATE TABLE manifest_policy (
    rule    VARCHAR PRIMARY KEY,
    action  VARCHAR NOT NULL,
    set_at  TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP
);

-- Every file holding an instance the manifest knows, compared with the manifest's row.
-- demographics: patient and study attributes that differ (names compared with norm_name; a
-- NULL in the manifest is no correction); uids: identity attributes that differ.
CREATE VIEW manifest_compare AS
SELECT
    f.path,
    f.sop_instance_uid,
    m.state,
    m.location,
    list_filter([
        CASE WHEN m.patient_id IS NOT NULL AND m.patient_id IS DISTINCT FROM f.patient_id
             THEN {'attribute': 'PatientID', 'file': f.patient_id, 'manifest': m.patient_id} END,
        CASE WHEN m.issuer_of_patient_id IS NOT NULL AND m.issuer_of_patient_id IS DISTINCT FROM f.issuer_of_patient_id
             THEN {'attribute': 'IssuerOfPatientID', 'file': f.issuer_of_patient_id, 'manifest': m.issuer_of_patient_id} END,
        CASE WHEN m.patient_name IS NOT NULL AND norm_name(m.patient_name) IS DISTINCT FROM norm_name(f.patient_name)
             THEN {'attribute': 'PatientName', 'file': f.patient_name, 'manifest': m.patient_name} END,
        CASE WHEN m.patient_birth_date IS NOT NULL AND m.patient_birth_date IS DISTINCT FROM f.patient_birth_date
             THEN {'attribute': 'PatientBirthDate', 'file': f.patient_birth_date, 'manifest': m.patient_birth_date} END,
        CASE WHEN m.patient_sex IS NOT NULL AND m.patient_sex IS DISTINCT FROM upper(f.patient_sex)
             THEN {'attribute': 'PatientSex', 'file': f.patient_sex, 'manifest': m.patient_sex} END,
        CASE WHEN m.accession_number IS NOT NULL AND m.accession_number IS DISTINCT FROM f.accession_number
             THEN {'attribute': 'AccessionNumber', 'file': f.accession_number, 'manifest': m.accession_number} END,
        CASE WHEN m.study_date IS NOT NULL AND m.study_date IS DISTINCT FROM f.study_date
             THEN {'attribute': 'StudyDate', 'file': f.study_date, 'manifest': m.study_date} END
    ], lambda x: x IS NOT NULL) AS demographics,
    list_filter([
        CASE WHEN m.study_instance_uid IS NOT NULL AND m.study_instance_uid IS DISTINCT FROM f.study_instance_uid
             THEN {'attribute': 'StudyInstanceUID', 'file': f.study_instance_uid, 'manifest': m.study_instance_uid} END,
        CASE WHEN m.series_instance_uid IS NOT NULL AND m.series_instance_uid IS DISTINCT FROM f.series_instance_uid
             THEN {'attribute': 'SeriesInstanceUID', 'file': f.series_instance_uid, 'manifest': m.series_instance_uid} END,
        CASE WHEN m.sop_class_uid IS NOT NULL AND m.sop_class_uid IS DISTINCT FROM f.sop_class_uid
             THEN {'attribute': 'SOPClassUID', 'file': f.sop_class_uid, 'manifest': m.sop_class_uid} END
    ], lambda x: x IS NOT NULL) AS uids
FROM files f
JOIN manifest m USING (sop_instance_uid)
WHERE f.status IN ('ok', 'suspect', 'corrupt');
