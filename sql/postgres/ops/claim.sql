-- Claim instances for sending to $target: returns the ones this host may send. An instance claimed by
-- another host (sending or stored) is not returned; this host's own claim still 'sending' (its earlier
-- run died before the answer was recorded) is taken again.
INSERT INTO claims (target, sop_instance_uid, host_id, run_id)
SELECT $target, s, $host_id, $run_id FROM unnest($sops::text[]) AS s
ON CONFLICT (target, sop_instance_uid) DO UPDATE SET run_id = excluded.run_id, claimed = now()
    WHERE claims.host_id = excluded.host_id AND claims.state = 'sending'
RETURNING sop_instance_uid;
