-- Record what a target accepts, one list element per (SOP class, transfer syntax) pair.
INSERT INTO target_capabilities (target, sop_class_uid, transfer_syntax_uid, accepted, result, probed_at)
SELECT $target, unnest($sop_class_uid), unnest($transfer_syntax_uid), unnest($accepted), unnest($result), $probed_at;
