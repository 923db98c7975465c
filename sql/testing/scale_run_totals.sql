-- The run's totals so far (schema 0034), as a send keeps them: this chunk's transfers added.
UPDATE send_runs SET recorded_stored = recorded_stored + t.stored, recorded_bytes = recorded_bytes + t.bytes,
                     recorded_until = greatest(recorded_until, t.ended)
FROM (SELECT count(*) FILTER (WHERE outcome IN ('stored', 'warning')) AS stored,
             coalesce(sum(bytes) FILTER (WHERE outcome IN ('stored', 'warning')), 0) AS bytes, max(finished) AS ended
      FROM transfers WHERE transfer_id > $transfers_before) t
WHERE run_id = 1;
