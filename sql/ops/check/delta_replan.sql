-- The SOPInstanceUIDs whose plan row is rebuilt by an incremental check: those a changed row
-- had or has, and those whose findings changed; their plan rows are deleted here and rebuilt
-- by build_plan's INSERT over their files only.
CREATE OR REPLACE TEMP TABLE check_replan_sops AS
SELECT k AS sop_instance_uid FROM check_keys WHERE dim = 'sop_instance_uid'
UNION
SELECT sop_instance_uid FROM check_replan;
DELETE FROM plan_auto WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM check_replan_sops);
