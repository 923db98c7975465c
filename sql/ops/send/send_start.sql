-- Open the bookkeeping row of a send run.
INSERT INTO send_runs (run_id, target, started, associations, max_rate, time_window, selection, queued)
SELECT coalesce(max(run_id), 0) + 1, $target, now()::TIMESTAMP, $associations, $max_rate, $window, $selection, $queued
FROM send_runs
RETURNING run_id;
