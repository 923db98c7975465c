-- Verification evidence, ordered: retired results, and the 'disputed' final state.

CREATE SEQUENCE verification_forget_id_seq;

-- verify --forget MODE: the results of one mode for one target recorded up to forgotten_at no longer count.
-- Nothing is deleted: the rows stay in verifications, this row says they were retired and when.
CREATE TABLE verification_forgets (
    forget_id     BIGINT PRIMARY KEY DEFAULT nextval('verification_forget_id_seq'),
    target        VARCHAR NOT NULL,
    mode          VARCHAR NOT NULL,   -- find | commit | retrieve
    forgotten_at  TIMESTAMP NOT NULL,
    rows_retired  BIGINT NOT NULL,    -- results of that mode and target it retired
    note          VARCHAR
);

-- The verifications that still count: those not retired by a later verify --forget.
CREATE VIEW verification_evidence AS
SELECT v.* FROM verifications v
WHERE NOT EXISTS (SELECT 1 FROM verification_forgets f
                  WHERE f.target = v.target AND f.mode = v.mode AND f.forgotten_at >= v.verified_at);

-- The latest verification per target, instance and mode, retired results left out.
CREATE OR REPLACE VIEW verification_latest AS
SELECT * FROM verification_evidence
QUALIFY row_number() OVER (PARTITION BY target, sop_instance_uid, mode
                           ORDER BY verified_at DESC, verification_id DESC) = 1;

-- final_states('AE@host:port'): one final state per SOPInstanceUID in the plan, for one target.
-- The evidence is ordered: retrieve (byte-compared) is stronger than commit, commit than find.
-- A run that could not check (outcome 'failed': no commitment service, no report, a C-MOVE
-- that failed) is no evidence either way. Per mode the latest evidence counts; the strongest
-- mode decides; a weaker mode's later result that says otherwise makes the instance 'disputed'.
CREATE OR REPLACE MACRO final_states(tgt) AS TABLE
WITH st AS (
    SELECT sop_instance_uid, with_warning FROM stored WHERE target = tgt
),
ev AS (   -- the latest evidence per instance and mode
    SELECT sop_instance_uid, mode, outcome, verified_at,
           CASE mode WHEN 'retrieve' THEN 3 WHEN 'commit' THEN 2 ELSE 1 END AS strength,
           mode || ': ' || outcome || coalesce(' (' || detail || ')', '')
               || ' at ' || strftime(verified_at, '%Y-%m-%d %H:%M:%S') AS said
    FROM verification_evidence
    WHERE target = tgt AND outcome IN ('verified', 'missing_on_target', 'mismatch')
    QUALIFY row_number() OVER (PARTITION BY sop_instance_uid, mode
                               ORDER BY verified_at DESC, verification_id DESC) = 1
),
best AS (  -- the strongest mode's latest evidence
    SELECT * FROM ev
    QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY strength DESC) = 1
),
contra AS (  -- later results of weaker modes that say otherwise (a mismatch is not contradicted by a listing)
    SELECT e.sop_instance_uid, string_agg('later ' || e.said, '; ' ORDER BY e.verified_at) AS said
    FROM ev e JOIN best b USING (sop_instance_uid)
    WHERE e.strength < b.strength AND e.verified_at > b.verified_at AND b.outcome <> 'mismatch'
      AND (e.outcome = 'verified') <> (b.outcome = 'verified')
    GROUP BY 1
),
tried AS (  -- the latest attempt that could not check, per instance: shown, not counted
    SELECT sop_instance_uid, mode || ': ' || outcome || coalesce(' (' || detail || ')', '') AS said
    FROM verification_evidence
    WHERE target = tgt AND outcome NOT IN ('verified', 'missing_on_target', 'mismatch')
    QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY verified_at DESC, verification_id DESC) = 1
),
lastfail AS (
    SELECT sop_instance_uid, coalesce(status_hex || ' ' || status_meaning, error) AS why
    FROM transfer_latest WHERE target = tgt AND outcome = 'failed'
),
dups AS (
    SELECT sop_instance_uid, count(*) FILTER (WHERE disposition = 'skip_duplicate') AS skipped
    FROM plan_files GROUP BY 1
)
SELECT
    p.sop_instance_uid,
    p.study_instance_uid,
    p.patient_id,
    p.disposition,
    CASE
        WHEN c.said IS NOT NULL THEN 'disputed'
        WHEN b.outcome IS NOT NULL THEN b.outcome
        WHEN st.sop_instance_uid IS NOT NULL THEN 'stored_unverified'
        WHEN p.disposition = 'send' AND lf.why IS NOT NULL THEN 'failed'
        WHEN p.disposition = 'send' THEN 'not_sent'
        WHEN p.disposition = 'blocked' THEN 'excluded_blocked'
        WHEN p.disposition = 'quarantine' THEN 'excluded_corrupt'
        WHEN p.disposition = 'hold' THEN 'excluded_held'
        WHEN p.disposition = 'skip' THEN 'excluded_decision'
        ELSE 'unaccounted'
    END AS final_state,
    CASE
        WHEN c.said IS NOT NULL THEN b.said || '; ' || c.said
        WHEN b.outcome IS NOT NULL THEN b.said
        WHEN st.sop_instance_uid IS NOT NULL THEN 'stored' || CASE WHEN st.with_warning THEN ' with a warning' ELSE '' END
             || ', not verified yet: ' || coalesce('the last attempt could not check: ' || t.said, 'run pacscopy verify')
        WHEN p.disposition = 'send' AND lf.why IS NOT NULL THEN 'send failed: ' || lf.why
        WHEN p.disposition = 'send' THEN 'planned, not sent yet'
        ELSE p.why
    END AS reason,
    coalesce(d.skipped, 0) AS duplicate_files_skipped
FROM plan p
LEFT JOIN st USING (sop_instance_uid)
LEFT JOIN best b USING (sop_instance_uid)
LEFT JOIN contra c USING (sop_instance_uid)
LEFT JOIN tried t USING (sop_instance_uid)
LEFT JOIN lastfail lf USING (sop_instance_uid)
LEFT JOIN dups d USING (sop_instance_uid)
;
