-- How many files an incremental check re-evaluates: the changed rows and every file sharing a
-- key with one (its SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID, AccessionNumber or
-- PatientID, old or new value).
SELECT count(*) FROM files
WHERE path IN (SELECT k FROM check_keys WHERE dim = 'path')
   OR sop_instance_uid IN (SELECT k FROM check_keys WHERE dim = 'sop_instance_uid')
   OR study_instance_uid IN (SELECT k FROM check_keys WHERE dim = 'study_instance_uid')
   OR series_instance_uid IN (SELECT k FROM check_keys WHERE dim = 'series_instance_uid')
   OR accession_number IN (SELECT k FROM check_keys WHERE dim = 'accession_number')
   OR patient_id IN (SELECT k FROM check_keys WHERE dim = 'patient_id');
