-- The SOPInstanceUIDs whose plan row is rebuilt by an incremental check: those a changed row
-- had or has, and those whose findings changed; their plan rows are deleted here and rebuilt
-- by build_plan's INSERT over their files only. Their rows are found by their 8-byte key
-- (schema 0031: one pass over plan_auto's sop_hash, not its UID column), then compared by UID.
CREATE OR REPLACE TEMP TABLE check_replan_sops AS
SELECT sop_instance_uid, sop_hash_of(sop_instance_uid) AS sop_hash
FROM (SELECT k AS sop_instance_uid FROM check_keys WHERE dim = 'sop_instance_uid'
      UNION
      SELECT sop_instance_uid FROM check_replan);
DELETE FROM plan_auto
WHERE rowid IN (SELECT rowid FROM plan_auto WHERE sop_hash IN (SELECT sop_hash FROM check_replan_sops))
  AND sop_instance_uid IN (SELECT sop_instance_uid FROM check_replan_sops);
