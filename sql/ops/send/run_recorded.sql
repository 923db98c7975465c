-- Add a batch of recorded attempts of run $run_id (their $outcome, $bytes and $finished, one list element
-- per attempt) to the run's totals so far (schema 0034), in the transaction that records them.
UPDATE send_runs SET recorded_stored = coalesce(recorded_stored, 0) + b.stored,
                     recorded_bytes = coalesce(recorded_bytes, 0) + b.bytes,
                     recorded_until = greatest(recorded_until, b.until)
FROM (SELECT count(*) FILTER (WHERE outcome IN ('stored', 'warning')) AS stored,
             coalesce(sum(bytes) FILTER (WHERE outcome IN ('stored', 'warning')), 0) AS bytes,
             max(finished::TIMESTAMP) AS until
      FROM (SELECT unnest($outcome) AS outcome, unnest($bytes) AS bytes, unnest($finished) AS finished)) b
WHERE run_id = $run_id;
