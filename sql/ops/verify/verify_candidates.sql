-- Instances recorded stored on $target, with what verification needs from the source file.
SELECT s.sop_instance_uid, f.sop_class_uid, f.study_instance_uid, f.series_instance_uid,
       f.path_bytes, f.dataset_offset, f.transfer_syntax_uid, s.wire_xxh3, t.rewritten
FROM stored s
JOIN files f ON f.path = s.path
LEFT JOIN transfer_latest t ON t.target = s.target AND t.sop_instance_uid = s.sop_instance_uid
WHERE s.target = $target
ORDER BY f.study_instance_uid, f.series_instance_uid, s.sop_instance_uid;
