-- The latest send run to $target (its totals: ops/status/run_stored, by its run_id).
SELECT run_id, started, finished FROM send_runs WHERE target = $target ORDER BY run_id DESC LIMIT 1;
