-- After a full check rebuilt the plan, before the old one (set aside as plan_auto_replaced by
-- sql/ops/check/plan_rebuild_begin.sql) is dropped: the instances whose plan row it changed, added or
-- removed, as the batch whose kept states status_counts moves (temporary table status_batch: a removed
-- instance has no UID nor sop_hash, only its key, by which its kept state is taken out).
-- Both plans are compared on disk by narrow digests: each row's instance by its sop_hash and a second
-- 64-bit hash of its UID, its content by hash() of the whole row (the two tables have the same
-- definition: plan_auto_ddl). The join spills when 2 × 49 M digests do not fit DuckDB's budget;
-- holding the old plan's digests in a temporary table through the rebuild did not fit the default
-- 1 GB at 50 M files, and the kept figures were forgotten instead (a 15-minute count at the next status).
CREATE OR REPLACE TEMP TABLE replanned_keys AS
SELECT coalesce(n.k, o.k) AS sop_hash, coalesce(n.h, o.h) AS uid_hash
FROM (SELECT sop_hash AS k, hash(sop_instance_uid) AS h, hash(a) AS d FROM plan_auto a) n
FULL JOIN (SELECT sop_hash AS k, hash(sop_instance_uid) AS h, hash(a) AS d FROM plan_auto_replaced a) o
       ON o.k = n.k AND o.h = n.h
WHERE n.d IS DISTINCT FROM o.d;
CREATE OR REPLACE TEMP TABLE status_batch AS
SELECT n.sop_instance_uid, md5_number(coalesce(n.sop_instance_uid, o.sop_instance_uid)) AS sop_key, n.sop_hash
FROM replanned_keys r
LEFT JOIN plan_auto n ON n.sop_hash = r.sop_hash AND hash(n.sop_instance_uid) = r.uid_hash
LEFT JOIN plan_auto_replaced o ON o.sop_hash = r.sop_hash AND hash(o.sop_instance_uid) = r.uid_hash;
