-- Write a staged batch of files new to the index (scan_batch): a plain insert.
INSERT INTO files BY NAME SELECT * EXCLUDE (replaced) FROM scan_batch;
