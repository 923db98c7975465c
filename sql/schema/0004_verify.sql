-- Verification of what the target holds.

CREATE SEQUENCE verification_id_seq;

CREATE TABLE verifications (
    verification_id  BIGINT PRIMARY KEY DEFAULT nextval('verification_id_seq'),
    target           VARCHAR NOT NULL,
    sop_instance_uid VARCHAR NOT NULL,
    mode             VARCHAR NOT NULL,   -- find | commit | retrieve
    verified_at      TIMESTAMP NOT NULL,
    outcome          VARCHAR NOT NULL,   -- verified | missing_on_target | mismatch | failed
    detail           VARCHAR,            -- what differs, why it failed
    header_diff      VARCHAR[],          -- retrieve: attributes that differ (the target's rewrites)
    pixels_equal     BOOLEAN             -- retrieve: pixel data equal (decoded where the syntax differs)
);

-- The latest verification per target, instance and mode: the one that counts.
CREATE VIEW verification_latest AS
SELECT * FROM verifications
QUALIFY row_number() OVER (PARTITION BY target, sop_instance_uid, mode
                           ORDER BY verified_at DESC, verification_id DESC) = 1;

-- final_states('AE@host:port'): one final state per SOPInstanceUID in the plan, for one target:
-- verified, excluded with its reason, or a problem that keeps the migration from being complete.
CREATE MACRO final_states(tgt) AS TABLE
WITH st AS (
    SELECT sop_instance_uid, with_warning FROM stored WHERE target = tgt
),
ver AS (
    SELECT sop_instance_uid,
           bool_or(outcome = 'verified') AS verified,
           bool_or(outcome = 'missing_on_target') AS missing,
           bool_or(outcome = 'mismatch') AS mismatch,
           bool_or(outcome = 'failed') AS failed,
           string_agg(mode || ': ' || outcome || coalesce(' (' || detail || ')', ''), '; ' ORDER BY mode) AS detail
    FROM verification_latest
    WHERE target = tgt
    GROUP BY 1
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
        WHEN v.missing THEN 'missing_on_target'
        WHEN v.mismatch THEN 'mismatch'
        WHEN v.verified AND NOT v.failed THEN 'verified'
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
        WHEN v.missing OR v.mismatch OR v.verified THEN v.detail
        WHEN st.sop_instance_uid IS NOT NULL THEN 'stored' || CASE WHEN st.with_warning THEN ' with a warning' ELSE '' END
             || ', not verified yet: run pacscopy verify'
        WHEN p.disposition = 'send' AND lf.why IS NOT NULL THEN 'send failed: ' || lf.why
        WHEN p.disposition = 'send' THEN 'planned, not sent yet'
        ELSE p.why
    END AS reason,
    coalesce(d.skipped, 0) AS duplicate_files_skipped
FROM plan p
LEFT JOIN st USING (sop_instance_uid)
LEFT JOIN ver v USING (sop_instance_uid)
LEFT JOIN lastfail lf USING (sop_instance_uid)
LEFT JOIN dups d USING (sop_instance_uid)
;
