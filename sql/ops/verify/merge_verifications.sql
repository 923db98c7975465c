-- Merge a journaled batch of verification results (one list element per instance; times as ISO text).
INSERT INTO verifications (target, sop_instance_uid, mode, verified_at, outcome, detail, header_diff, pixels_equal, sop_hash)
SELECT $target, n.sop_instance_uid, $mode, n.verified_at::TIMESTAMP, n.outcome, n.detail, n.header_diff, n.pixels_equal,
       sop_hash_of(n.sop_instance_uid)
FROM (SELECT unnest($sop_instance_uid) AS sop_instance_uid, unnest($verified_at) AS verified_at,
             unnest($outcome) AS outcome, unnest($detail) AS detail, unnest($header_diff::VARCHAR[][]) AS header_diff,
             unnest($pixels_equal) AS pixels_equal) n;
