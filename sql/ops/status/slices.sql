-- Slices of the books holding only the instances in temporary table status_batch: temporary tables of the
-- same names, which shadow the real ones (DuckDB looks in temp first) while status_counts.py
-- evaluates final_states for a batch; dropped right after (sql/ops/status/slices_drop.sql).
-- The wide tables are read in two steps: the row ids of the batch's rows from one pass over the
-- SOPInstanceUID column alone, then those rows (a semi join on the UID that reads every column
-- took 2.5 times as long at 5 M files: BENCHMARKS.md). Still a pass over each table's UID column
-- per batch (DuckDB joins by hash, not through an index): the macros then read a few rows per instance.
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
