-- Merge a journaled batch of C-STORE attempts of run $run_id to $target (one list element per
-- attempt). What was read and sent (source_xxh3, sent_patient_id, sent_header as JSON, is_update)
-- was journaled from the queue's spool, as the queue read the file row: a scan or map since
-- does not change what this attempt sent.
INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, bytes, status, status_hex,
                       status_meaning, outcome, error, wire_xxh3, transfer_syntax_uid, rewritten, association,
                       source_xxh3, sent_patient_id, sent_header, is_update, sop_hash)
SELECT $run_id, $target, n.sop_instance_uid, n.path, n.started::TIMESTAMP, n.finished::TIMESTAMP, n.bytes, n.status,
       CASE WHEN n.status IS NOT NULL THEN printf('0x%04X', n.status) END, n.status_meaning, n.outcome, n.error,
       n.wire_xxh3, n.transfer_syntax_uid, n.rewritten, n.association,
       n.source_xxh3, n.sent_patient_id,
       json_transform(n.sent_header, '{"PatientName": "VARCHAR", "PatientBirthDate": "VARCHAR",
           "PatientSex": "VARCHAR", "IssuerOfPatientID": "VARCHAR", "AccessionNumber": "VARCHAR",
           "StudyDate": "VARCHAR", "StudyDescription": "VARCHAR", "Modality": "VARCHAR",
           "StudyInstanceUID": "VARCHAR", "SeriesInstanceUID": "VARCHAR", "SOPClassUID": "VARCHAR",
           "TransferSyntaxUID": "VARCHAR", "SeriesNumber": "INTEGER", "InstanceNumber": "INTEGER",
           "Rows": "INTEGER", "Columns": "INTEGER", "NumberOfFrames": "INTEGER", "PixelDataLength": "BIGINT"}'),
       coalesce(n.is_update, false), sop_hash_of(n.sop_instance_uid)
FROM (SELECT unnest($sop_instance_uid) AS sop_instance_uid, unnest($path) AS path, unnest($started) AS started,
             unnest($finished) AS finished, unnest($bytes) AS bytes, unnest($status) AS status,
             unnest($status_meaning) AS status_meaning, unnest($outcome) AS outcome, unnest($error) AS error,
             unnest($wire_xxh3) AS wire_xxh3, unnest($transfer_syntax_uid) AS transfer_syntax_uid,
             unnest($rewritten) AS rewritten, unnest($association) AS association,
             unnest($source_xxh3) AS source_xxh3, unnest($sent_patient_id) AS sent_patient_id,
             unnest($sent_header) AS sent_header, unnest($is_update) AS is_update) n;
