-- Instances of the plan per final state for $target (macro final_states), with their planned bytes
-- and how many of them the latest store answered with a warning. status's figures
-- (pacscopy/send/status_counts.py) are sums of these rows; ops/status/count_keyed.sql is the same
-- for the instances in table status_keys only.
SELECT final_state,
       count(*) AS instances,
       coalesce(sum(size), 0)::BIGINT AS bytes,
       count(*) FILTER (WHERE with_warning) AS warnings
FROM final_states_wide_of($target, false)
GROUP BY 1
ORDER BY 1;
