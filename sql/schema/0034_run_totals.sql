-- What each send run has stored so far, kept as its attempts are recorded (issue 12): status shows the
-- latest run's totals, and reading them from the run's transfers cost ~0.4 s at 30 M transfers in one
-- run (status's goal at 50 M files is under a second), more the longer a send runs. Every writer of
-- transfers adds its batch here in the same transaction (ops/send/run_recorded). The run's own
-- `stored`, `warnings` and `bytes` stay its summary, written at its end.
ALTER TABLE send_runs ADD COLUMN recorded_stored BIGINT DEFAULT 0;   -- attempts stored, with or without a warning
ALTER TABLE send_runs ADD COLUMN recorded_bytes BIGINT DEFAULT 0;    -- their dataset bytes over the wire
ALTER TABLE send_runs ADD COLUMN recorded_until TIMESTAMP;           -- the latest attempt's end (any outcome)

UPDATE send_runs SET recorded_stored = t.stored, recorded_bytes = t.bytes, recorded_until = t.ended
FROM (SELECT run_id, max(finished) AS ended,
             count(*) FILTER (WHERE outcome IN ('stored', 'warning')) AS stored,
             coalesce(sum(bytes) FILTER (WHERE outcome IN ('stored', 'warning')), 0) AS bytes
      FROM transfers GROUP BY run_id) t
WHERE send_runs.run_id = t.run_id;
