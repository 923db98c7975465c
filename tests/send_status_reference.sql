-- send_status.sql before issue 12 (the stored and transfer_latest views), the reference tests/test_scale.py compares with.
-- Progress towards $target: planned, stored, failed, left, and the rate of the latest run.
WITH planned AS (
    SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM plan WHERE disposition = 'send'
),
st AS (
    SELECT count(*) FILTER (WHERE NOT with_warning) AS stored, count(*) FILTER (WHERE with_warning) AS warnings
    FROM stored s JOIN plan p USING (sop_instance_uid) WHERE s.target = $target
),
lastfail AS (
    SELECT count(*) AS failed FROM transfer_latest t
    WHERE t.target = $target AND t.outcome = 'failed'
      AND NOT EXISTS (SELECT 1 FROM stored s WHERE s.target = t.target AND s.sop_instance_uid = t.sop_instance_uid)
),
lastrun AS (
    SELECT run_id, started, coalesce(finished, (SELECT max(finished) FROM transfers t WHERE t.run_id = r.run_id)) AS ended,
           (SELECT coalesce(sum(bytes), 0) FROM transfers t WHERE t.run_id = r.run_id AND outcome IN ('stored', 'warning')) AS bytes,
           (SELECT count(*) FROM transfers t WHERE t.run_id = r.run_id AND outcome IN ('stored', 'warning')) AS instances
    FROM send_runs r WHERE target = $target ORDER BY run_id DESC LIMIT 1
)
SELECT planned.n AS planned, planned.bytes AS planned_bytes, st.stored, st.warnings, lastfail.failed,
       planned.n - st.stored - st.warnings AS left_to_send,
       lastrun.run_id, lastrun.started, lastrun.ended, lastrun.instances, lastrun.bytes
FROM planned, st, lastfail LEFT JOIN lastrun ON true;
