-- Progress towards $target: planned, stored, failed, left, and the rate of the latest run.
-- One narrow pass over the target's transfers (per instance: stored at all, with a warning, the
-- latest outcome) instead of the stored and transfer_latest views over every target's wide rows.
WITH planned AS (
    SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM plan WHERE disposition = 'send'
),
per_sop AS (
    SELECT sop_instance_uid,
           bool_or(outcome IN ('stored', 'warning')) AS is_stored,
           bool_or(outcome = 'warning') AS with_warning,
           arg_max(outcome, {'f': finished, 'id': transfer_id}) AS latest
    FROM transfers
    WHERE target = $target
    GROUP BY 1
),
st AS (
    SELECT count(*) FILTER (WHERE is_stored AND NOT with_warning) AS stored,
           count(*) FILTER (WHERE is_stored AND with_warning) AS warnings
    FROM per_sop s
    WHERE is_stored AND EXISTS (SELECT 1 FROM plan_auto p WHERE p.sop_instance_uid = s.sop_instance_uid)
),
lastfail AS (
    SELECT count(*) AS failed FROM per_sop WHERE latest = 'failed' AND NOT is_stored
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
