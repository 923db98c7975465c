-- Checks, content hashes, user decisions and the per-instance plan.

-- Normalised person name for comparisons: case, surrounding/duplicate
-- whitespace and trailing '^' are not differences.
CREATE MACRO norm_name(n) AS
    nullif(regexp_replace(regexp_replace(upper(trim(n)), '\s+', ' ', 'g'), '[\^ ]+$', ''), '');

-- A UID as DICOM PS3.5 9.1 wants it: <= 64 chars, digits and dots, no empty
-- component, no leading zero in a component.
CREATE MACRO uid_valid(u) AS
    length(u) <= 64 AND regexp_full_match(u, '(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*');

-- The instances checks look at: sound or nearly sound files with a header.
CREATE VIEW instances AS
SELECT * FROM files WHERE status IN ('ok', 'suspect');

-- One row per affected file and check; rebuilt by `pacscopy check`.
CREATE TABLE findings (
    check_id         VARCHAR NOT NULL,   -- the check's name (sql/checks/<check_id>.sql)
    severity         VARCHAR NOT NULL,   -- error | warning | info
    path             VARCHAR NOT NULL,   -- the affected file (joins to files.path)
    sop_instance_uid VARCHAR,
    group_key        VARCHAR,            -- the shared value of a group finding (the AccessionNumber, the UID, ...)
    detail           VARCHAR,
    recoverable      BOOLEAN,            -- corrupt_file: an intact copy of the instance exists elsewhere
    found_at         TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP
);

-- Canonical content hashes, computed only for files whose SOPInstanceUID has
-- copies with different dataset bytes. Cached per (path, xxh3).
CREATE TABLE content_hashes (
    path            VARCHAR PRIMARY KEY,
    xxh3            VARCHAR NOT NULL,    -- the file content the hash was computed from
    content_hash    VARCHAR,             -- over all dataset elements in tag order, group 0002 excluded; NULL: unreadable
    pixel_hash      VARCHAR,
    pixel_decoded   BOOLEAN,             -- pixel data compared decoded (false: compared as encoded bytes)
    note            VARCHAR,             -- why pixels were not decoded, or why the file could not be read
    element_hashes  MAP(VARCHAR, VARCHAR), -- attribute keyword -> hash of its normalised value
    computed_at     TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP
);

-- The user's word on an instance: never touched by `check`.
CREATE TABLE decisions (
    sop_instance_uid VARCHAR PRIMARY KEY,
    action           VARCHAR NOT NULL CHECK (action IN ('send', 'skip', 'hold')),
    path             VARCHAR,            -- the copy to send (send only; NULL: the plan's choice)
    note             VARCHAR NOT NULL,
    decided_at       TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP,
    decided_by       VARCHAR
);

-- SOP classes pydicom knows, filled by `check`: names, retired and enhanced flags.
CREATE TABLE sop_classes (
    uid       VARCHAR PRIMARY KEY,
    name      VARCHAR,
    keyword   VARCHAR,
    retired   BOOLEAN,
    enhanced  BOOLEAN
);

-- What a target accepts (filled by `pacscopy probe`).
CREATE TABLE target_capabilities (
    target              VARCHAR NOT NULL,
    sop_class_uid       VARCHAR NOT NULL,
    transfer_syntax_uid VARCHAR NOT NULL,
    accepted            BOOLEAN NOT NULL,
    result              VARCHAR,
    probed_at           TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP,
    PRIMARY KEY (target, sop_class_uid, transfer_syntax_uid)
);

-- The automatic disposition per instance, rebuilt by `check` (see sql/ops/build_plan.sql).
CREATE TABLE plan_auto (
    sop_instance_uid VARCHAR PRIMARY KEY,
    path             VARCHAR,
    disposition      VARCHAR NOT NULL,
    why              VARCHAR NOT NULL,
    copies           INTEGER NOT NULL,
    sound_copies     INTEGER NOT NULL,
    sop_class_uid    VARCHAR,
    transfer_syntax_uid VARCHAR,
    study_instance_uid  VARCHAR,
    patient_id       VARCHAR,
    size             BIGINT,
    transcode_to     VARCHAR             -- blocked only: a syntax the target accepts for this class after decompression
);

-- The plan: one row per SOPInstanceUID, the automatic disposition overridden by decisions.
CREATE VIEW plan AS
SELECT
    a.sop_instance_uid,
    coalesce(d.path, a.path) AS path,
    CASE d.action WHEN 'send' THEN 'send' WHEN 'skip' THEN 'skip' WHEN 'hold' THEN 'hold'
                  ELSE a.disposition END AS disposition,
    CASE WHEN d.action IS NOT NULL THEN 'decision: ' || d.note ELSE a.why END AS why,
    d.action IS NOT NULL AS decided,
    a.disposition AS auto_disposition,
    a.why AS auto_why,
    d.note AS decision_note,
    d.decided_at,
    a.copies,
    a.sound_copies,
    a.sop_class_uid,
    a.transfer_syntax_uid,
    a.study_instance_uid,
    a.patient_id,
    a.size,
    a.transcode_to
FROM plan_auto a
LEFT JOIN decisions d USING (sop_instance_uid);

-- Every file of a planned instance and what happens to it.
CREATE VIEW plan_files AS
SELECT
    f.path,
    f.sop_instance_uid,
    CASE
        WHEN f.path = p.path THEN p.disposition
        WHEN f.status = 'missing' THEN 'missing'
        WHEN f.status IN ('corrupt', 'suspect') THEN 'quarantine'
        WHEN p.disposition = 'send' THEN 'skip_duplicate'
        ELSE p.disposition
    END AS disposition,
    CASE
        WHEN f.path = p.path THEN p.why
        WHEN f.status = 'missing' THEN 'vanished from the source'
        WHEN f.status IN ('corrupt', 'suspect') THEN f.status || ': ' || f.reason
        WHEN p.disposition = 'send' THEN 'duplicate of ' || p.path
        ELSE p.why
    END AS why
FROM files f
JOIN plan p USING (sop_instance_uid);
