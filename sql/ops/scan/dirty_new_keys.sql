-- Record the keys of the rows a scan just wrote (the staged batch, scan_batch).
INSERT INTO check_dirty
SELECT path, sop_instance_uid, study_instance_uid, series_instance_uid, accession_number, patient_id, $scan_id
FROM scan_batch;
