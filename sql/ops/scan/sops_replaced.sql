-- The SOPInstanceUIDs the rows a batch replaced had (ops/scan/upsert_files' scan_replaced).
SELECT DISTINCT old_sop FROM scan_replaced WHERE old_sop IS NOT NULL;
