-- Instances of the plan per final state for $target (macro final_states_of; $keyed: only the
-- instances in table status_keys), with their planned bytes and how many of them the latest store
-- answered with a warning. status's figures (pacscopy/send/status_counts.py) are sums of these rows.
SELECT f.final_state,
       count(*) AS instances,
       coalesce(sum(a.size), 0)::BIGINT AS bytes,
       count(*) FILTER (WHERE s.with_warning) AS warnings
FROM final_states_of($target, $keyed) f
LEFT JOIN (SELECT sop_instance_uid, size FROM plan_auto
           WHERE NOT $keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys)) a USING (sop_instance_uid)
LEFT JOIN (SELECT sop_instance_uid, with_warning FROM stored_content_of($keyed) WHERE target = $target) s
       USING (sop_instance_uid)
GROUP BY 1
ORDER BY 1;
