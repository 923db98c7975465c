-- The staged batch is written.
DROP TABLE IF EXISTS temp.main.scan_batch;
DROP TABLE IF EXISTS temp.main.scan_replaced;
DROP TABLE IF EXISTS temp.main.scan_pending;
DROP TABLE IF EXISTS temp.main.scan_relocated;
