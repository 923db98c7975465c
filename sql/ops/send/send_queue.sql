-- The instances to send to $target: planned 'send' (with $transcode also 'blocked' ones that
-- can be sent decompressed), not yet stored there. PatientIDs mapped on the way out.
SELECT
    p.sop_instance_uid, f.sop_class_uid, f.transfer_syntax_uid, f.path, f.path_bytes,
    f.dataset_offset, f.size, f.mtime_ns, f.dataset_xxh3,
    m.new_patient_id, m.issuer_of_patient_id AS new_issuer,
    CASE WHEN p.disposition = 'blocked' THEN p.transcode_to ELSE f.transfer_syntax_uid END AS send_syntax,
    p.study_instance_uid, f.modality, f.study_date, f.patient_id, f.volume
FROM plan p
JOIN files f ON f.path = p.path
LEFT JOIN patient_map m ON m.old_patient_id = f.patient_id
WHERE (p.disposition = 'send' OR ($transcode AND p.disposition = 'blocked' AND p.transcode_to IS NOT NULL))
  AND f.status IN ('ok', 'suspect', 'corrupt')
  AND f.dataset_offset IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM stored s WHERE s.target = $target AND s.sop_instance_uid = p.sop_instance_uid)
