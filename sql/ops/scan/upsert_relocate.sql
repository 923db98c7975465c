-- Where the rows a scan still has to replace are now (temp table scan_pending: their paths, this
-- batch's included), once ops/scan/upsert_moved found rows of a batch that are no longer at the row id
-- the scan read (a checkpoint moved them: DuckDB drops row groups whose rows were all deleted, and the
-- rows after them take lower row ids). One pass over files' path column for all of them, not one per
-- batch; the batch's own are rebound (ops/scan/upsert_rebind) and found again by ops/scan/upsert_find.
CREATE OR REPLACE TEMP TABLE scan_relocated AS
SELECT f.path, f.rowid AS rid FROM files f SEMI JOIN scan_pending p ON f.path = p.path;
