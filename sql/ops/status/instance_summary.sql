-- status's figures for $target from its kept instances (table status_instances).
SELECT final_state, count(*) AS instances, coalesce(sum(bytes), 0)::BIGINT AS bytes,
       count(*) FILTER (WHERE warning) AS warnings
FROM status_instances WHERE target = $target GROUP BY 1 ORDER BY 1;
