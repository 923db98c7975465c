-- The latest send run to $target: when it started and ended, what it stored (the rate status shows).
SELECT run_id, started, coalesce(finished, (SELECT max(finished) FROM transfers t WHERE t.run_id = r.run_id)) AS ended,
       (SELECT count(*) FROM transfers t WHERE t.run_id = r.run_id AND outcome IN ('stored', 'warning')) AS instances,
       (SELECT coalesce(sum(bytes), 0) FROM transfers t WHERE t.run_id = r.run_id AND outcome IN ('stored', 'warning')) AS bytes
FROM send_runs r WHERE target = $target ORDER BY run_id DESC LIMIT 1;
