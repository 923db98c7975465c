-- Record a batch of verification results (one list element per instance).
INSERT INTO verifications (target, sop_instance_uid, mode, verified_at, outcome, detail, header_diff, pixels_equal)
SELECT $target, unnest($sop_instance_uid), $mode, unnest($verified_at), unnest($outcome), unnest($detail),
       unnest($header_diff), unnest($pixels_equal);
