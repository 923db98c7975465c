-- Replace the manifest with the validated export (sex in upper case, state in lower case, the row's
-- place in the file from manifest_norm's order) and record the load (run inside one transaction).
DELETE FROM manifest;
INSERT INTO manifest
SELECT sop_instance_uid, study_instance_uid, series_instance_uid, sop_class_uid, patient_id,
       issuer_of_patient_id, patient_name, patient_birth_date, upper(patient_sex), accession_number,
       study_date, modality, location, lower(state), rowid + 1
FROM manifest_norm;
INSERT INTO manifest_loads (source, format, rows, columns)
SELECT $source, $format, count(*), $columns FROM manifest_norm;
