-- The first $limit instances (by study, then SOPInstanceUID) for $target whose final state is one of
-- $states (see the final_states table macro in sql/schema). A top-N: memory bounded by $limit.
SELECT * FROM final_states($target)
WHERE list_contains($states, final_state)
ORDER BY study_instance_uid, sop_instance_uid
LIMIT $limit;
