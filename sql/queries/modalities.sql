-- Studies and instances per modality and SOP class
SELECT coalesce(modality, '') AS modality, sop_class_uid,
       count(DISTINCT study_instance_uid) AS studies, count(*) AS files
FROM files
WHERE status IN ('ok', 'suspect', 'corrupt') AND sop_class_uid IS NOT NULL
GROUP BY ALL
ORDER BY files DESC;
