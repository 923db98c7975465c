-- Record a batch of C-STORE attempts (one list element per attempt) of run $run_id to $target.
-- What was read and sent (source_xxh3, sent_patient_id, sent_header) comes from the file row the
-- queue read and what pacscopy writes on the way out (view outgoing: the manifest's corrections, the
-- PatientID map; no scan, map or manifest load can run meanwhile: the index is held); is_update: the
-- target already had the instance from an earlier store.
INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, bytes, status, status_hex,
                       status_meaning, outcome, error, wire_xxh3, transfer_syntax_uid, rewritten, association,
                       source_xxh3, sent_patient_id, sent_header, is_update)
SELECT $run_id, $target, n.sop_instance_uid, n.path, n.started, n.finished, n.bytes, n.status,
       CASE WHEN n.status IS NOT NULL THEN printf('0x%04X', n.status) END, n.status_meaning, n.outcome, n.error,
       n.wire_xxh3, n.transfer_syntax_uid, n.rewritten, n.association,
       f.dataset_xxh3, ow.patient_id_out, ow.header,
       EXISTS (SELECT 1 FROM transfers o WHERE o.target = $target AND o.sop_instance_uid = n.sop_instance_uid
                                          AND o.outcome IN ('stored', 'warning'))
FROM (SELECT unnest($sop_instance_uid) AS sop_instance_uid, unnest($path) AS path, unnest($started) AS started,
             unnest($finished) AS finished, unnest($bytes) AS bytes, unnest($status) AS status,
             unnest($status_meaning) AS status_meaning, unnest($outcome) AS outcome, unnest($error) AS error,
             unnest($wire_xxh3) AS wire_xxh3, unnest($transfer_syntax_uid) AS transfer_syntax_uid,
             unnest($rewritten) AS rewritten, unnest($association) AS association) n
LEFT JOIN files f ON f.path = n.path
LEFT JOIN outgoing ow ON ow.path = n.path;
