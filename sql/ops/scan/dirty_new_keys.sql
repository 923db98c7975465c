-- Record the keys of the rows a scan just wrote (one list element per file).
INSERT INTO check_dirty
SELECT unnest($path), unnest($sop_instance_uid), unnest($study_instance_uid), unnest($series_instance_uid),
       unnest($accession_number), unnest($patient_id), $scan_id;
