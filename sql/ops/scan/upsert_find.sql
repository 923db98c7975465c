-- The rows a staged batch (scan_batch) replaces, by the row ids the scan read with its root's known
-- files (old_rid), kept only where the path there is still the batch's: no pass over files' path
-- column (at 20 M files, one such pass per 20,000-row transaction cost ~1.4 s of CPU; issue 12).
-- With each, what the writer needs of it: first_seen (kept), the old keys (for the incremental
-- check) and SOPInstanceUID (status's kept figures). scan_replaced stays till ops/scan/stage_end.
CREATE OR REPLACE TEMP TABLE scan_replaced AS
SELECT rowid AS rid, path, first_seen, sop_instance_uid AS old_sop, study_instance_uid, series_instance_uid,
    accession_number, patient_id
FROM files
WHERE rowid IN (SELECT old_rid FROM scan_batch WHERE old_rid IS NOT NULL);
DELETE FROM scan_replaced
WHERE NOT EXISTS (SELECT 1 FROM scan_batch b WHERE b.old_rid = scan_replaced.rid AND b.path = scan_replaced.path);
