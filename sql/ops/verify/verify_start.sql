-- Open the record of a verify run.
INSERT INTO verify_runs (run_id, target, mode, selection, started)
SELECT coalesce(max(run_id), 0) + 1, $target, $mode, $selection, $started
FROM verify_runs
RETURNING run_id;
