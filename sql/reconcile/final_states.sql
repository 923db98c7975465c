-- The first $limit instances (by study, then SOPInstanceUID) whose final state is one of $states,
-- with their reasons (the final_states table macro for $target, see sql/schema). Run over slices of
-- the books holding only the listed instances (reconcile/first.sql; pacscopy/send/status_counts.py
-- sliced()): the same rows as over the whole books, for those instances.
SELECT * FROM final_states($target)
WHERE list_contains($states, final_state)
ORDER BY study_instance_uid, sop_instance_uid
LIMIT $limit;
