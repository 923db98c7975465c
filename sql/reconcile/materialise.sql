-- Every planned instance's final state for $target, computed once into a temp table that the
-- reconciliation's totals, studies, problem lists and manifest section read (final_states reads the
-- whole books: at tens of millions of instances, minutes per pass). DuckDB spills a temp table
-- beyond its memory limit; reconcile/drop.sql removes it.
CREATE OR REPLACE TEMP TABLE reconcile_final AS
SELECT f.*, s.sop_instance_uid IS NOT NULL AS on_record
FROM final_states($target) f
LEFT JOIN (SELECT sop_instance_uid FROM stored_content WHERE target = $target) s USING (sop_instance_uid);
