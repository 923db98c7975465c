-- The latest send run to $target, and what it has stored so far (kept as its attempts are recorded,
-- schema 0034): ended is the run's end or, while it runs or after it was killed, its latest attempt's.
SELECT run_id, started, coalesce(finished, recorded_until) AS ended, recorded_stored AS instances,
       recorded_bytes AS bytes
FROM send_runs WHERE target = $target ORDER BY run_id DESC LIMIT 1;
