-- Drop the slices of sql/ops/status/slices.sql (the real tables are seen again).
DROP TABLE IF EXISTS temp.main.files;
DROP TABLE IF EXISTS temp.main.plan_auto;
DROP TABLE IF EXISTS temp.main.decisions;
DROP TABLE IF EXISTS temp.main.transfers;
DROP TABLE IF EXISTS temp.main.verifications;
DROP TABLE IF EXISTS temp.main.manifest;
DROP TABLE IF EXISTS temp.main.status_slice_keys;
DROP TABLE IF EXISTS temp.main.status_slice_rows;
