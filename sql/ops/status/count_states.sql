-- Instances of the plan per final state for $target (macro final_states), with their planned bytes
-- and how many of them the latest store answered with a warning. status's figures
-- (pacscopy/send/status_counts.py) are sums of these rows; ops/status/count_keyed.sql is the same
-- for the instances in table status_keys only.
SELECT f.final_state,
       count(*) AS instances,
       coalesce(sum(a.size), 0)::BIGINT AS bytes,
       count(*) FILTER (WHERE s.with_warning) AS warnings
FROM final_states_of($target, false) f
LEFT JOIN (SELECT sop_instance_uid, size FROM plan_auto) a USING (sop_instance_uid)
LEFT JOIN (SELECT sop_instance_uid, with_warning FROM stored_content_of(false) WHERE target = $target) s
       USING (sop_instance_uid)
GROUP BY 1
ORDER BY 1;
