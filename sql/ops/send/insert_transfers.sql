-- Record a batch of C-STORE attempts (one list element per attempt) of run $run_id to $target.
INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, bytes, status, status_hex,
                       status_meaning, outcome, error, wire_xxh3, transfer_syntax_uid, rewritten, association)
SELECT $run_id, $target, sop_instance_uid, path, started, finished, bytes, status,
       CASE WHEN status IS NOT NULL THEN printf('0x%04X', status) END, status_meaning, outcome, error, wire_xxh3,
       transfer_syntax_uid, rewritten, association
FROM (SELECT unnest($sop_instance_uid) AS sop_instance_uid, unnest($path) AS path, unnest($started) AS started,
             unnest($finished) AS finished, unnest($bytes) AS bytes, unnest($status) AS status,
             unnest($status_meaning) AS status_meaning, unnest($outcome) AS outcome, unnest($error) AS error,
             unnest($wire_xxh3) AS wire_xxh3, unnest($transfer_syntax_uid) AS transfer_syntax_uid,
             unnest($rewritten) AS rewritten, unnest($association) AS association);
