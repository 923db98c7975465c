-- Instances per final state for $target.
SELECT final_state, count(*) AS instances FROM final_states($target) GROUP BY 1 ORDER BY 2 DESC, 1;
