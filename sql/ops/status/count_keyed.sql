-- ops/status/count_states.sql for the instances in table status_keys only: the macros in their keyed
-- mode read only those instances' rows. (keyed is a literal, not a $parameter, so that DuckDB folds
-- the macros' "NOT keyed OR ..." filters away into semi joins on status_keys.)
SELECT final_state,
       count(*) AS instances,
       coalesce(sum(size), 0)::BIGINT AS bytes,
       count(*) FILTER (WHERE with_warning) AS warnings
FROM final_states_wide_of($target, true)
GROUP BY 1
ORDER BY 1;
