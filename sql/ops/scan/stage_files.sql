-- Stage one part of a batch of scanned files in temp table scan_batch (ops/scan/stage_begin), from
-- which ops/scan/insert_files or ops/scan/upsert_files write them. Every $column arrives as a list of
-- equal length (one element per file); old_rid: the row id of the row a file replaces (NULL if new).
-- Schema 0030: path_bytes is kept only for a name that is not valid UTF-8 (path is the name itself
-- otherwise), meta_sop_instance_uid only where it differs from sop_instance_uid (macro meta_sop_uid_stored).
-- Schema 0031: sop_hash, the UID's key (macro sop_hash_of).
INSERT INTO scan_batch BY NAME
SELECT * REPLACE (
    CASE WHEN path_bytes <> encode(path) THEN path_bytes END AS path_bytes,
    meta_sop_uid_stored(meta_sop_instance_uid, sop_instance_uid) AS meta_sop_instance_uid),
    sop_hash_of(sop_instance_uid) AS sop_hash  -- schema 0031: the instance's key
FROM (SELECT
        unnest($path) AS path,
        unnest($path_bytes) AS path_bytes,
        $volume AS volume,
        $root AS root,
        unnest($size) AS size,
        make_timestamp(unnest($mtime_us)) AS mtime,
        unnest($mtime_ns) AS mtime_ns,
        unnest($xxh3) AS xxh3,
        unnest($dataset_xxh3) AS dataset_xxh3,
        unnest($status) AS status,
        unnest($reason) AS reason,
        unnest($detail) AS detail,
        unnest($has_meta) AS has_meta,
        unnest($dataset_offset) AS dataset_offset,
        unnest($transfer_syntax_uid) AS transfer_syntax_uid,
        unnest($detected_syntax) AS detected_syntax,
        unnest($meta_sop_class_uid) AS meta_sop_class_uid,
        unnest($meta_sop_instance_uid) AS meta_sop_instance_uid,
        unnest($sop_instance_uid) AS sop_instance_uid,
        unnest($sop_class_uid) AS sop_class_uid,
        unnest($study_instance_uid) AS study_instance_uid,
        unnest($series_instance_uid) AS series_instance_uid,
        unnest($patient_id) AS patient_id,
        unnest($issuer_of_patient_id) AS issuer_of_patient_id,
        unnest($patient_name) AS patient_name,
        unnest($patient_birth_date) AS patient_birth_date,
        unnest($patient_sex) AS patient_sex,
        unnest($accession_number) AS accession_number,
        unnest($study_date) AS study_date,
        unnest($study_description) AS study_description,
        unnest($modality) AS modality,
        unnest($series_number) AS series_number,
        unnest($instance_number) AS instance_number,
        unnest($number_of_frames) AS number_of_frames,
        unnest($rows) AS rows,
        unnest($columns) AS columns,
        unnest($pixel_data_offset) AS pixel_data_offset,
        unnest($pixel_data_length) AS pixel_data_length,
        unnest($encapsulated) AS encapsulated,
        now()::TIMESTAMP AS first_seen,
        now()::TIMESTAMP AS scanned_at,
        $scan_id AS scan_id,
        unnest($old_rid) AS old_rid);
