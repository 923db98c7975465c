-- Instances per final state for $target, from the per-instance states (table status_instances: kept
-- by status and the writers, or evaluated in full into a temporary table of the same name).
SELECT final_state, count(*) AS instances
FROM status_instances
WHERE target = $target
GROUP BY 1
ORDER BY 2 DESC, 1;
