-- sql/ops/status/slices.sql for an index without schema 0031 (no sop_hash: opened read-only, not migrated):
-- the batch's rows found by their SOPInstanceUID, a pass over each table's UID column.
CREATE TEMP TABLE files AS SELECT * FROM files
WHERE rowid IN (SELECT rowid FROM files WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch));
CREATE TEMP TABLE plan_auto AS SELECT * FROM plan_auto
WHERE rowid IN (SELECT rowid FROM plan_auto WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch));
CREATE TEMP TABLE decisions AS SELECT * FROM decisions WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch);
CREATE TEMP TABLE transfers AS SELECT * FROM transfers
WHERE rowid IN (SELECT rowid FROM transfers WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch));
CREATE TEMP TABLE verifications AS SELECT * FROM verifications
WHERE rowid IN (SELECT rowid FROM verifications WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch));
CREATE TEMP TABLE manifest AS SELECT * FROM manifest WHERE sop_key IN (SELECT sop_key FROM status_batch);
