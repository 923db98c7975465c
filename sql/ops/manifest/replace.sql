-- Replace the manifest with the validated export and record the load (run inside one transaction).
DELETE FROM manifest;
INSERT INTO manifest
SELECT sop_instance_uid, study_instance_uid, series_instance_uid, sop_class_uid, patient_id,
       issuer_of_patient_id, patient_name, patient_birth_date, patient_sex, accession_number,
       study_date, modality, location, state, source_row
FROM manifest_norm;
INSERT INTO manifest_loads (source, format, rows, columns)
SELECT $source, $format, count(*), $columns FROM manifest_norm;
