-- Drop the staging tables of a manifest load.
DROP VIEW IF EXISTS manifest_stage;
DROP TABLE IF EXISTS manifest_raw;
DROP TABLE IF EXISTS manifest_norm;
