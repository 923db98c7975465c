-- Slices of the books holding only the instances in temporary table status_batch: temporary tables of the
-- same names, which shadow the real ones (DuckDB looks in temp first) while status_counts.py
-- evaluates final_states for a batch; dropped right after (sql/ops/status/slices_drop.sql).
-- The wide tables' rows are found by key first (sql/ops/status/slice_rows.sql: a pass over the 8-byte
-- sop_hash column, schema 0031), then read within up to 8 row-id runs per table
-- ($<table>_lo0..7 / _hi0..7, sql/ops/status/slice_runs.sql; an unused run is 1..0), so that only the
-- row groups holding them are decoded; their UIDs are compared too (two UIDs may share a key).
CREATE TEMP TABLE files AS SELECT * FROM files
WHERE (  rowid BETWEEN $files_lo0 AND $files_hi0
    OR rowid BETWEEN $files_lo1 AND $files_hi1
    OR rowid BETWEEN $files_lo2 AND $files_hi2
    OR rowid BETWEEN $files_lo3 AND $files_hi3
    OR rowid BETWEEN $files_lo4 AND $files_hi4
    OR rowid BETWEEN $files_lo5 AND $files_hi5
    OR rowid BETWEEN $files_lo6 AND $files_hi6
    OR rowid BETWEEN $files_lo7 AND $files_hi7)
  AND rowid IN (SELECT rid FROM status_slice_rows WHERE tbl = 'files')
  AND sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch);
CREATE TEMP TABLE plan_auto AS SELECT * FROM plan_auto
WHERE (  rowid BETWEEN $plan_auto_lo0 AND $plan_auto_hi0
    OR rowid BETWEEN $plan_auto_lo1 AND $plan_auto_hi1
    OR rowid BETWEEN $plan_auto_lo2 AND $plan_auto_hi2
    OR rowid BETWEEN $plan_auto_lo3 AND $plan_auto_hi3
    OR rowid BETWEEN $plan_auto_lo4 AND $plan_auto_hi4
    OR rowid BETWEEN $plan_auto_lo5 AND $plan_auto_hi5
    OR rowid BETWEEN $plan_auto_lo6 AND $plan_auto_hi6
    OR rowid BETWEEN $plan_auto_lo7 AND $plan_auto_hi7)
  AND rowid IN (SELECT rid FROM status_slice_rows WHERE tbl = 'plan_auto')
  AND sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch);
CREATE TEMP TABLE decisions AS SELECT * FROM decisions WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch);
CREATE TEMP TABLE transfers AS SELECT * FROM transfers
WHERE (  rowid BETWEEN $transfers_lo0 AND $transfers_hi0
    OR rowid BETWEEN $transfers_lo1 AND $transfers_hi1
    OR rowid BETWEEN $transfers_lo2 AND $transfers_hi2
    OR rowid BETWEEN $transfers_lo3 AND $transfers_hi3
    OR rowid BETWEEN $transfers_lo4 AND $transfers_hi4
    OR rowid BETWEEN $transfers_lo5 AND $transfers_hi5
    OR rowid BETWEEN $transfers_lo6 AND $transfers_hi6
    OR rowid BETWEEN $transfers_lo7 AND $transfers_hi7)
  AND rowid IN (SELECT rid FROM status_slice_rows WHERE tbl = 'transfers')
  AND sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch);
CREATE TEMP TABLE verifications AS SELECT * FROM verifications
WHERE (  rowid BETWEEN $verifications_lo0 AND $verifications_hi0
    OR rowid BETWEEN $verifications_lo1 AND $verifications_hi1
    OR rowid BETWEEN $verifications_lo2 AND $verifications_hi2
    OR rowid BETWEEN $verifications_lo3 AND $verifications_hi3
    OR rowid BETWEEN $verifications_lo4 AND $verifications_hi4
    OR rowid BETWEEN $verifications_lo5 AND $verifications_hi5
    OR rowid BETWEEN $verifications_lo6 AND $verifications_hi6
    OR rowid BETWEEN $verifications_lo7 AND $verifications_hi7)
  AND rowid IN (SELECT rid FROM status_slice_rows WHERE tbl = 'verifications')
  AND sop_instance_uid IN (SELECT sop_instance_uid FROM status_batch);
CREATE TEMP TABLE manifest AS SELECT * FROM manifest WHERE sop_key IN (SELECT sop_key FROM status_batch);
