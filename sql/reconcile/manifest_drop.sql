-- Drop the temp table of the manifest reconciliation.
DROP TABLE IF EXISTS manifest_final;
