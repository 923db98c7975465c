-- Drop the staging table of a manifest load.
DROP TABLE IF EXISTS manifest_norm;
