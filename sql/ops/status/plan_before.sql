-- Before a full check rebuilds the plan (status_counts.replanning): a digest of each plan row by its
-- instance's key (status_instances' md5_number), 24 bytes per instance, to find after the rebuild the
-- instances whose row changed (sql/ops/status/replanned.sql).
CREATE OR REPLACE TEMP TABLE plan_before AS
SELECT md5_number(sop_instance_uid) AS sop_key, hash(a) AS d FROM plan_auto a;
