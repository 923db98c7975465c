-- A staged batch's rows with the row ids ops/scan/upsert_relocate found for the rows they replace;
-- ops/scan/upsert_find then finds those rows again (checked against their paths, as always).
UPDATE scan_batch SET old_rid = r.rid
FROM scan_relocated r
WHERE scan_batch.path = r.path AND scan_batch.old_rid IS NOT NULL;
