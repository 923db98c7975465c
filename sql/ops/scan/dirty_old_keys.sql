-- Record the keys the files a scan did not find (scan_gone) still have before it marks them
-- missing: the groups they leave are re-evaluated by the next incremental check.
INSERT INTO check_dirty
SELECT path, sop_instance_uid, study_instance_uid, series_instance_uid, accession_number, patient_id, $scan_id
FROM files
WHERE rowid IN (SELECT rid FROM scan_gone) AND status <> 'missing';
