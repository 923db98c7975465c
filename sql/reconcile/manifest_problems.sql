-- Instances of the manifest reconciliation that keep it from being complete, broken links first.
SELECT sop_instance_uid, location, final_state, reason
FROM manifest_final
WHERE final_state NOT IN ('verified') AND NOT starts_with(final_state, 'excluded_')
ORDER BY final_state <> 'lost_no_file', location, sop_instance_uid
LIMIT $limit;
