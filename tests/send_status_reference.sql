-- sql/ops/send/send_status.sql before schema 0017 (one full pass of final_states), the reference
-- tests/test_status_counts.py compares the kept figures with.
-- Progress towards $target: every instance of the plan counted once by its final state (macro
-- final_states, so the figures add up to the plan and none is negative), and the latest run's rate.
-- One pass of final_states (each is a scan of the target's books): the warnings come from the same
-- rows, by the latest store's outcome (view stored_content: one row per target and instance).
WITH fs AS (
    SELECT f.final_state, p.size, s.with_warning
    FROM final_states($target) f
    JOIN plan p USING (sop_instance_uid)
    LEFT JOIN (SELECT sop_instance_uid, with_warning FROM stored_content WHERE target = $target) s
           USING (sop_instance_uid)
),
c AS (
    SELECT count(*) AS in_plan,
           count(*) FILTER (WHERE final_state IN ('verified', 'stored_unverified')) AS stored_current,
           count(*) FILTER (WHERE final_state = 'verified') AS verified,
           count(*) FILTER (WHERE final_state IN ('mismatch', 'missing_on_target', 'disputed')) AS verify_problems,
           count(*) FILTER (WHERE final_state = 'update_pending') AS updates_pending,
           count(*) FILTER (WHERE final_state = 'stale_on_target') AS stale,
           count(*) FILTER (WHERE final_state = 'deleted_in_source') AS deleted_in_source,
           count(*) FILTER (WHERE final_state = 'awaiting_decision') AS awaiting_decision,
           count(*) FILTER (WHERE final_state = 'failed') AS failed,
           count(*) FILTER (WHERE final_state = 'not_sent') AS not_sent,
           count(*) FILTER (WHERE final_state LIKE 'excluded_%' OR final_state = 'unaccounted') AS excluded,
           coalesce(sum(size) FILTER (WHERE final_state IN ('not_sent', 'failed', 'update_pending', 'stale_on_target')), 0)
               AS left_bytes,
           count(*) FILTER (WHERE with_warning AND final_state IN ('verified', 'stored_unverified')) AS warnings
    FROM fs
),
lastrun AS (
    SELECT run_id, started, coalesce(finished, (SELECT max(finished) FROM transfers t WHERE t.run_id = r.run_id)) AS ended,
           (SELECT coalesce(sum(bytes), 0) FROM transfers t WHERE t.run_id = r.run_id AND outcome IN ('stored', 'warning')) AS bytes,
           (SELECT count(*) FROM transfers t WHERE t.run_id = r.run_id AND outcome IN ('stored', 'warning')) AS instances
    FROM send_runs r WHERE target = $target ORDER BY run_id DESC LIMIT 1
)
SELECT c.*, c.not_sent + c.failed + c.updates_pending + c.stale AS left_to_send,
       lastrun.run_id, lastrun.started, lastrun.ended, lastrun.instances, lastrun.bytes
FROM c LEFT JOIN lastrun ON true;
