-- Record a batch of C-STORE attempts (one list element per attempt) of run $run_id to $target.
-- What was read and sent (source_xxh3, sent_patient_id, sent_header) comes from the file row the
-- queue read (no scan or map can run meanwhile: the index is held); is_update: the target already
-- had the instance from an earlier store.
INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, bytes, status, status_hex,
                       status_meaning, outcome, error, wire_xxh3, transfer_syntax_uid, rewritten, association,
                       source_xxh3, sent_patient_id, sent_header, is_update)
SELECT $run_id, $target, n.sop_instance_uid, n.path, n.started, n.finished, n.bytes, n.status,
       CASE WHEN n.status IS NOT NULL THEN printf('0x%04X', n.status) END, n.status_meaning, n.outcome, n.error,
       n.wire_xxh3, n.transfer_syntax_uid, n.rewritten, n.association,
       f.dataset_xxh3,
       CASE WHEN n.rewritten LIKE '%patient_id_mapped%' THEN coalesce(m.new_patient_id, f.patient_id)
            ELSE f.patient_id END,
       {'PatientName': f.patient_name, 'PatientBirthDate': f.patient_birth_date, 'PatientSex': f.patient_sex,
        'IssuerOfPatientID': f.issuer_of_patient_id, 'AccessionNumber': f.accession_number,
        'StudyDate': f.study_date, 'StudyDescription': f.study_description, 'Modality': f.modality,
        'StudyInstanceUID': f.study_instance_uid, 'SeriesInstanceUID': f.series_instance_uid,
        'SOPClassUID': f.sop_class_uid, 'TransferSyntaxUID': f.transfer_syntax_uid,
        'SeriesNumber': f.series_number, 'InstanceNumber': f.instance_number, 'Rows': f.rows,
        'Columns': f.columns, 'NumberOfFrames': f.number_of_frames, 'PixelDataLength': f.pixel_data_length},
       EXISTS (SELECT 1 FROM transfers o WHERE o.target = $target AND o.sop_instance_uid = n.sop_instance_uid
                                          AND o.outcome IN ('stored', 'warning'))
FROM (SELECT unnest($sop_instance_uid) AS sop_instance_uid, unnest($path) AS path, unnest($started) AS started,
             unnest($finished) AS finished, unnest($bytes) AS bytes, unnest($status) AS status,
             unnest($status_meaning) AS status_meaning, unnest($outcome) AS outcome, unnest($error) AS error,
             unnest($wire_xxh3) AS wire_xxh3, unnest($transfer_syntax_uid) AS transfer_syntax_uid,
             unnest($rewritten) AS rewritten, unnest($association) AS association) n
LEFT JOIN files f ON f.path = n.path
LEFT JOIN patient_map m ON m.old_patient_id = f.patient_id;
