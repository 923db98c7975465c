-- Record a batch of C-STORE attempts (one list element per attempt) of run $run_id to $target.
-- What was read and sent (source_xxh3, sent_patient_id, sent_header) comes from the file row the
-- queue read and what pacscopy writes on the way out (the macros of view outgoing: the manifest's
-- corrections, the PatientID map; no scan, map or manifest load can run meanwhile: the index is
-- held); is_update: the target already had the instance from an earlier store.
INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, bytes, status, status_hex,
                       status_meaning, outcome, error, wire_xxh3, transfer_syntax_uid, rewritten, association,
                       source_xxh3, sent_patient_id, sent_header, is_update, sop_hash)
WITH n AS (
    SELECT unnest($sop_instance_uid) AS sop_instance_uid, unnest($path) AS path, unnest($started) AS started,
           unnest($finished) AS finished, unnest($bytes) AS bytes, unnest($status) AS status,
           unnest($status_meaning) AS status_meaning, unnest($outcome) AS outcome, unnest($error) AS error,
           unnest($wire_xxh3) AS wire_xxh3, unnest($transfer_syntax_uid) AS transfer_syntax_uid,
           unnest($rewritten) AS rewritten, unnest($association) AS association
),
fc AS (  -- the manifest's corrections, read only for the attempts that wrote them (rewritten manifest#N:...)
    SELECT f2.path, CASE WHEN f2.status IN ('ok', 'suspect', 'corrupt') AND manifest_rewrites()
                         THEN manifest_corrections(f2, m) END AS c
    FROM files f2 JOIN manifest m ON m.sop_instance_uid = f2.sop_instance_uid
    WHERE f2.path IN (SELECT path FROM n WHERE rewritten LIKE '%manifest#%')
)
SELECT $run_id, $target, n.sop_instance_uid, n.path, n.started, n.finished, n.bytes, n.status,
       CASE WHEN n.status IS NOT NULL THEN printf('0x%04X', n.status) END, n.status_meaning, n.outcome, n.error,
       n.wire_xxh3, n.transfer_syntax_uid, n.rewritten, n.association,
       f.dataset_xxh3, coalesce(mp.new_patient_id, fc.c.PatientID, f.patient_id), outgoing_header(f, fc.c, mp),
       EXISTS (SELECT 1 FROM transfers o WHERE o.target = $target AND o.sop_instance_uid = n.sop_instance_uid
                                          AND o.outcome IN ('stored', 'warning')),
       sop_hash_of(n.sop_instance_uid)
FROM n
LEFT JOIN files f ON f.path = n.path
LEFT JOIN fc ON fc.path = n.path
LEFT JOIN patient_map mp ON mp.old_patient_id = coalesce(fc.c.PatientID, f.patient_id);
