-- The instances of the whole migration not accounted for on $target (not stored, or stored by two hosts).
SELECT sop_instance_uid, state, host, why FROM final_states($target)
WHERE state NOT IN ('stored', 'excluded')
ORDER BY state, sop_instance_uid
LIMIT $limit;
