-- Empty PatientID, or no StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID or SOPClassUID
SELECT 'error' AS severity, path, sop_instance_uid,
       concat_ws(',',
           CASE WHEN patient_id IS NULL THEN 'PatientID' END,
           CASE WHEN study_instance_uid IS NULL THEN 'StudyInstanceUID' END,
           CASE WHEN series_instance_uid IS NULL THEN 'SeriesInstanceUID' END,
           CASE WHEN sop_instance_uid IS NULL THEN 'SOPInstanceUID' END,
           CASE WHEN sop_class_uid IS NULL THEN 'SOPClassUID' END) AS group_key,
       'missing or empty: ' || concat_ws(', ',
           CASE WHEN patient_id IS NULL THEN 'PatientID' END,
           CASE WHEN study_instance_uid IS NULL THEN 'StudyInstanceUID' END,
           CASE WHEN series_instance_uid IS NULL THEN 'SeriesInstanceUID' END,
           CASE WHEN sop_instance_uid IS NULL THEN 'SOPInstanceUID' END,
           CASE WHEN sop_class_uid IS NULL THEN 'SOPClassUID' END) AS detail,
       NULL::BOOLEAN AS recoverable
FROM files
WHERE (status IN ('ok', 'suspect') OR (status = 'corrupt' AND reason LIKE 'missing_%'))
  AND (patient_id IS NULL OR study_instance_uid IS NULL OR series_instance_uid IS NULL
       OR sop_instance_uid IS NULL OR sop_class_uid IS NULL)
