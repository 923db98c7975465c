-- Record a batch of C-STORE attempts (one list element per attempt).
INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, bytes, status, status_hex,
                       status_meaning, outcome, error, wire_xxh3, transfer_syntax_uid, rewritten, association)
SELECT unnest($run_id), unnest($target), unnest($sop_instance_uid), unnest($path), unnest($started),
       unnest($finished), unnest($bytes), unnest($status), unnest($status_hex), unnest($status_meaning),
       unnest($outcome), unnest($error), unnest($wire_xxh3), unnest($transfer_syntax_uid),
       unnest($rewritten), unnest($association);
