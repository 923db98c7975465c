-- The instances to send to $target: planned 'send' (with $transcode also 'blocked' ones that
-- can be sent decompressed), not yet stored there, or stored there and due for an update (the
-- source or its PatientID mapping changed since, or a retrieve-back showed the target kept its old
-- copy: macro books). PatientIDs mapped and the manifest's corrections written on the way out.
SELECT
    p.sop_instance_uid, f.sop_class_uid, f.transfer_syntax_uid, f.path,
    file_path_bytes(f.path, f.path_bytes) AS path_bytes,   -- schema 0030: NULL for a UTF-8 name
    f.dataset_offset, f.size, f.mtime_ns, f.dataset_xxh3,
    m.new_patient_id, m.issuer_of_patient_id AS new_issuer,
    CASE WHEN p.disposition = 'blocked' THEN p.transcode_to ELSE f.transfer_syntax_uid END AS send_syntax,
    p.study_instance_uid, f.modality, f.study_date, f.patient_id, f.volume,
    coalesce(b.stored, false) AS is_update, b.content_why AS update_why,
    -- the old PACS's database values for the attributes that differ (manifest policy demographics=rewrite)
    CASE WHEN len(mc.demographics) > 0
         THEN list_transform(mc.demographics, lambda x: [x.attribute, x.manifest]) END AS manifest_set,
    CASE WHEN len(mc.demographics) > 0 THEN (SELECT max(load_id) FROM manifest_loads) END AS manifest_load,
    -- what the books record of each attempt (as read here: send spools the queue): what the target
    -- gets, after the manifest's corrections and the map (schema 0015: outgoing_header)
    coalesce(m.new_patient_id, corrections_of(mc.demographics).PatientID, f.patient_id) AS sent_patient_id,
    to_json(outgoing_header(f, corrections_of(mc.demographics), m))::VARCHAR AS sent_header
FROM plan p
JOIN files f ON f.path = p.path
LEFT JOIN manifest_compare mc
       ON mc.path = f.path
      AND coalesce((SELECT action FROM manifest_policy WHERE rule = 'demographics'), 'rewrite') = 'rewrite'
-- a PatientID corrected by the manifest is mapped in its corrected form
LEFT JOIN patient_map m
       ON m.old_patient_id = coalesce(list_filter(mc.demographics, lambda x: x.attribute = 'PatientID')[1].manifest,
                                      f.patient_id)
LEFT JOIN books($target) b ON b.sop_instance_uid = p.sop_instance_uid
WHERE (p.disposition = 'send' OR ($transcode AND p.disposition = 'blocked' AND p.transcode_to IS NOT NULL))
  AND f.status IN ('ok', 'suspect', 'corrupt')
  AND f.dataset_offset IS NOT NULL
  AND (b.stored IS NOT TRUE OR b.content IN ('changed', 'stale'))
