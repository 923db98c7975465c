-- The latest verify run of $target, $mode and $selection, if it did not finish (killed, or stopped
-- by an error): the next verify takes it up again.
SELECT run_id, started FROM (
    SELECT run_id, started, finished FROM verify_runs
    WHERE target = $target AND mode = $mode AND selection = $selection
    ORDER BY run_id DESC LIMIT 1)
WHERE finished IS NULL;
