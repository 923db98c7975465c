-- The files build_plan's INSERT reads in an incremental check (shadowing table files): every
-- copy of the SOPInstanceUIDs re-planned (check_replan_sops), found by their key (schema 0031).
CREATE TEMP TABLE files AS
SELECT * FROM files
WHERE rowid IN (SELECT rowid FROM files WHERE sop_hash IN (SELECT sop_hash FROM temp.main.check_replan_sops))
  AND sop_instance_uid IN (SELECT sop_instance_uid FROM temp.main.check_replan_sops);
