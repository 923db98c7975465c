-- How many rows of a staged batch replace a row no longer at the row id the scan read (a checkpoint
-- moved rows, or another scan replaced it meanwhile): ops/scan/upsert_relocate finds them by path.
SELECT count(*) FROM scan_batch b
WHERE b.old_rid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM scan_replaced r WHERE r.path = b.path);
