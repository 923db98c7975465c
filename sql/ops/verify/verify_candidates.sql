-- Instances recorded stored on $target, with what verification needs from the source file: the
-- copy that was sent, or (when it vanished) the plan's copy. Instances deleted in the source (every
-- copy vanished) are not verified: there is nothing left to compare with (issue 14).
SELECT s.sop_instance_uid, f.sop_class_uid, f.study_instance_uid, f.series_instance_uid,
       file_path_bytes(f.path, f.path_bytes) AS path_bytes, f.dataset_offset, f.transfer_syntax_uid, s.wire_xxh3, t.rewritten, sc.sent_patient_id
FROM stored s
JOIN plan p ON p.sop_instance_uid = s.sop_instance_uid
JOIN files sent ON sent.path = s.path
JOIN files f ON f.path = CASE WHEN sent.status = 'missing' THEN p.path ELSE s.path END
LEFT JOIN transfer_latest t ON t.target = s.target AND t.sop_instance_uid = s.sop_instance_uid
LEFT JOIN stored_content sc ON sc.target = s.target AND sc.sop_instance_uid = s.sop_instance_uid
WHERE s.target = $target AND f.status <> 'missing'
ORDER BY f.study_instance_uid, f.series_instance_uid, s.sop_instance_uid;
