-- The first $limit instances (by study, then SOPInstanceUID) whose final state is one of $states
-- (temp table reconcile_final: the final_states table macro for the target, see sql/schema).
-- A top-N: memory bounded by $limit.
SELECT * EXCLUDE (on_record) FROM reconcile_final
WHERE list_contains($states, final_state)
ORDER BY study_instance_uid, sop_instance_uid
LIMIT $limit;
