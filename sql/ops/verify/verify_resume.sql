-- A verify takes run $run_id up again.
UPDATE verify_runs SET resumed = resumed + 1 WHERE run_id = $run_id;
