-- Instances of the whole migration per final state for $target (function final_states).
SELECT state, count(*) AS instances FROM final_states($target) GROUP BY state ORDER BY state;
