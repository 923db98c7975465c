-- The staged batch is written.
DROP TABLE IF EXISTS temp.main.scan_batch;
DROP TABLE IF EXISTS temp.main.scan_replaced;
