-- The user's decisions, newest first (at most $limit), with what the rules would have done.
SELECT d.sop_instance_uid, d.action, d.note, d.path, d.decided_at, d.decided_by,
       a.disposition AS auto_disposition
FROM decisions d
LEFT JOIN plan_auto a USING (sop_instance_uid)
ORDER BY d.decided_at DESC, d.sop_instance_uid
LIMIT $limit;
