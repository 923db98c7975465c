-- Slices of the books holding only the instances in temporary table status_batch: temporary tables of the
-- same names, which shadow the real ones (DuckDB looks in temp first) while status_counts.py
-- evaluates final_states for a batch; dropped right after (sql/ops/status/slices_drop.sql).
-- The wide tables are read in two steps: the row ids of the batch's rows from one pass over the 8-byte
-- key column sop_hash alone (schema 0031; at 50 M files a pass over the ~55-byte SOPInstanceUID column
-- instead cost ~15 s per 20,000-row batch: BENCHMARKS.md, "50 million files"), then those rows, whose
-- UID is compared too (two UIDs may share a key).
CREATE TEMP TABLE files AS SELECT * FROM files
WHERE rowid IN (SELECT rowid FROM files WHERE sop_hash IN (SELECT sop_hash FROM status_batch))
  AND sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch);
CREATE TEMP TABLE plan_auto AS SELECT * FROM plan_auto
WHERE rowid IN (SELECT rowid FROM plan_auto WHERE sop_hash IN (SELECT sop_hash FROM status_batch))
  AND sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch);
CREATE TEMP TABLE decisions AS SELECT * FROM decisions WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch);
CREATE TEMP TABLE transfers AS SELECT * FROM transfers
WHERE rowid IN (SELECT rowid FROM transfers WHERE sop_hash IN (SELECT sop_hash FROM status_batch))
  AND sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch);
CREATE TEMP TABLE verifications AS SELECT * FROM verifications
WHERE rowid IN (SELECT rowid FROM verifications WHERE sop_hash IN (SELECT sop_hash FROM status_batch))
  AND sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch);
CREATE TEMP TABLE manifest AS SELECT * FROM manifest WHERE sop_key IN (SELECT sop_key FROM status_batch);
