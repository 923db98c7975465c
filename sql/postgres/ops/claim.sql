-- Claim instances for sending to $target: returns the ones this host may send. An instance claimed by
-- another host that is sending (stored, or 'sending' by a host holding its lock, host_sending.sql) is not
-- returned. A claim still 'sending' whose host holds no lock any more (its send ended, was killed or lost
-- its machine before the answer was recorded) is taken over: by this host again, or by another one.
INSERT INTO claims (target, sop_instance_uid, host_id, run_id)
SELECT $target, s, $host_id, $run_id FROM unnest($sops::text[]) AS s
ON CONFLICT (target, sop_instance_uid) DO UPDATE
    SET host_id = excluded.host_id, run_id = excluded.run_id, claimed = now()
    WHERE claims.state = 'sending' AND (claims.host_id = excluded.host_id OR NOT EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.classid = 7013013::oid AND l.objid = claims.host_id::oid
          AND l.objsubid = 2 AND l.granted AND l.pid <> pg_backend_pid()))
RETURNING sop_instance_uid;
