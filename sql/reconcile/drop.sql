-- Drop the temp table of a reconciliation (reconcile/materialise.sql).
DROP TABLE IF EXISTS reconcile_final;
