-- A batch's instances move in status_instances for $target: their old rows (by key) are taken out
-- and the new ones (temporary table status_new, evaluated over the slices) put in. The old rows are
-- kept in temporary table status_old for the summary's delta (status_counts.py).
CREATE OR REPLACE TEMP TABLE status_old AS
SELECT final_state, bytes, warning FROM status_instances
WHERE target = $target AND sop_key IN (SELECT sop_key FROM status_batch);
DELETE FROM status_instances WHERE target = $target AND sop_key IN (SELECT sop_key FROM status_batch);
INSERT INTO status_instances SELECT * FROM status_new WHERE target = $target;
