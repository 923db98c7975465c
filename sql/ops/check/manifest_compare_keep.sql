-- A full check with a manifest loaded: manifest_compare (every file joined with the manifest, the
-- few that differ compared exactly) computed once into a temporary table of the same name, which
-- the manifest_mismatch check and the plan then read instead of the view (the temporary schema is
-- searched first); check drops it before its transaction ends.
CREATE TEMP TABLE manifest_compare AS SELECT * FROM manifest_compare;
