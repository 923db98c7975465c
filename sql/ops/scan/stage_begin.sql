-- An empty staging table for one batch of scanned files, with the columns of files (and whether
-- the row replaces one already in the index, set by ops/scan/upsert_files).
CREATE OR REPLACE TEMP TABLE scan_batch AS SELECT *, false AS replaced FROM files LIMIT 0;
