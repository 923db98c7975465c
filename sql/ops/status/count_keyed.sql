-- ops/status/count_states.sql for the instances in table status_keys only: the macros in their keyed
-- mode read only those instances' rows. (keyed is a literal, not a $parameter, so that DuckDB folds
-- the macros' "NOT keyed OR ..." filters away into semi joins on status_keys.)
SELECT f.final_state,
       count(*) AS instances,
       coalesce(sum(a.size), 0)::BIGINT AS bytes,
       count(*) FILTER (WHERE s.with_warning) AS warnings
FROM final_states_of($target, true) f
LEFT JOIN (SELECT sop_instance_uid, size FROM plan_auto
           WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys)) a USING (sop_instance_uid)
LEFT JOIN (SELECT sop_instance_uid, with_warning FROM stored_content_of(true) WHERE target = $target) s
       USING (sop_instance_uid)
GROUP BY 1
ORDER BY 1;
