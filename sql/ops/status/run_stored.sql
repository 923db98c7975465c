-- What send run $run_id stored (the rate status shows), and when its latest attempt ended.
-- A constant run_id lets DuckDB skip the row groups of other runs (their zone maps): a run's
-- transfers are written together, so this reads the run's rows, not the whole table (at 30 M
-- transfers, ~1 s of CPU read through a correlated subquery; a send publishing its figures for a
-- polled status runs it after every merge).
SELECT max(finished) AS ended,
       count(*) FILTER (WHERE outcome IN ('stored', 'warning')) AS instances,
       coalesce(sum(bytes) FILTER (WHERE outcome IN ('stored', 'warning')), 0) AS bytes
FROM transfers WHERE run_id = $run_id;
