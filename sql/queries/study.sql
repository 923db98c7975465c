-- All files of one study: pacscopy query study -p uid=1.2.3...
SELECT series_instance_uid, instance_number, sop_instance_uid, status, reason, path
FROM files
WHERE study_instance_uid = $uid
ORDER BY series_instance_uid, instance_number, path;
