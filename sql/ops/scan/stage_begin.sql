-- An empty staging table for one batch of scanned files, with the columns of files and old_rid:
-- the row id of the index row a file replaces (NULL for a new path; ops/scan/upsert_find).
CREATE OR REPLACE TEMP TABLE scan_batch AS SELECT *, NULL::BIGINT AS old_rid FROM files LIMIT 0;
