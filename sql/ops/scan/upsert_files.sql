-- Write a staged batch (scan_batch) of which some paths are in the index already (their rows in
-- scan_replaced: ops/scan/upsert_find); first_seen survives a rescan. Not an INSERT ... ON CONFLICT
-- DO UPDATE: DuckDB's update of ~40 columns of rows spread over the table cost ~0.8 ms per row
-- (issue 12: 100,000 changed rows spread over a 20 M-file index took 119 s, 87 s of CPU), and its
-- conflict lookups walk the primary key's index, which does not fit the scan's memory at that size.
-- Instead the replaced rows' keys are recorded for the next incremental check (if recording), their
-- first_seen kept, and they are deleted by row id and inserted anew with the rest of the batch.
INSERT INTO check_dirty
SELECT path, old_sop, study_instance_uid, series_instance_uid, accession_number, patient_id, $scan_id
FROM scan_replaced
WHERE $record;
UPDATE scan_batch SET first_seen = r.first_seen
FROM scan_replaced r
WHERE scan_batch.path = r.path;
DELETE FROM files WHERE rowid IN (SELECT rid FROM scan_replaced);
INSERT INTO files BY NAME SELECT * EXCLUDE (old_rid) FROM scan_batch;
