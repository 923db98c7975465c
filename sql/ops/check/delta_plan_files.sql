-- The files build_plan's INSERT reads in an incremental check (shadowing table files): every
-- copy of the SOPInstanceUIDs re-planned (check_replan_sops).
CREATE TEMP TABLE files AS
SELECT * FROM files WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM temp.main.check_replan_sops);
