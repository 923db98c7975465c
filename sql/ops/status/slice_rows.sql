-- The row ids of the batch's rows (temporary table status_batch) in the four big tables, found by key:
-- one pass over each table's 8-byte sop_hash column (schema 0031). sql/ops/status/slice_runs.sql
-- groups them into runs, and sql/ops/status/slices.sql reads each table's rows within its runs.
CREATE OR REPLACE TEMP TABLE status_slice_rows AS
SELECT 'files' AS tbl, rowid AS rid FROM files WHERE sop_hash IN (SELECT sop_hash FROM status_batch)
UNION ALL
SELECT 'plan_auto', rowid FROM plan_auto WHERE sop_hash IN (SELECT sop_hash FROM status_batch)
UNION ALL
SELECT 'transfers', rowid FROM transfers WHERE sop_hash IN (SELECT sop_hash FROM status_batch)
UNION ALL
SELECT 'verifications', rowid FROM verifications WHERE sop_hash IN (SELECT sop_hash FROM status_batch);
