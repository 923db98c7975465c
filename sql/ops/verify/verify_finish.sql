-- Close the record of verify run $run_id.
UPDATE verify_runs SET finished = $finished::TIMESTAMP, checked = $checked WHERE run_id = $run_id;
