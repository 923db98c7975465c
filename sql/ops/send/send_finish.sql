-- Close the bookkeeping row of a send run with its counts.
UPDATE send_runs SET finished = now()::TIMESTAMP, stored = $stored, warnings = $warnings, failed = $failed,
    not_sent = $not_sent, bytes = $bytes, outcome = $outcome
WHERE run_id = $run_id;
