-- Record the keys rows still have before the scan overwrites them (or marks them missing): the
-- groups they leave are re-evaluated by the next incremental check.
INSERT INTO check_dirty
SELECT path, sop_instance_uid, study_instance_uid, series_instance_uid, accession_number, patient_id, $scan_id
FROM files
WHERE path IN (SELECT unnest($paths));
