-- Write a staged batch of files new to the index (scan_batch): a plain insert.
INSERT INTO files BY NAME SELECT * EXCLUDE (old_rid) FROM scan_batch;
