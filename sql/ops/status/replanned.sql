-- After a full check rebuilt the plan: the instances whose plan row it changed, added or removed
-- (their digests differ from plan_before's, sql/ops/status/plan_before.sql), as the batch whose kept
-- states status_counts moves (temporary table status_batch: a removed instance has no UID nor
-- sop_hash, only its key, by which its kept state is taken out).
CREATE OR REPLACE TEMP TABLE status_batch AS
SELECT n.sop_instance_uid, coalesce(n.sop_key, o.sop_key) AS sop_key, n.sop_hash
FROM (SELECT sop_instance_uid, md5_number(sop_instance_uid) AS sop_key, sop_hash, hash(a) AS d FROM plan_auto a) n
FULL JOIN plan_before o ON o.sop_key = n.sop_key
WHERE n.d IS DISTINCT FROM o.d;
