-- Incremental check (issue 12 item 2): what changed since the last check, so that check
-- re-evaluates only the groups the changed files belong to.

-- One row: the last complete `pacscopy check` (of all checks). fingerprint: a hash of everything
-- besides the files that findings and the plan depend on (the check SQL, the schema version,
-- pacscopy's version, SOP class dictionary, probed capabilities, manifest loads and policy,
-- transcoders); when it differs, the next check is a full one. full_needed: a scan wrote more
-- changes than are worth recording (a rehash, a huge new volume), the next check is a full one.
CREATE TABLE check_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint  VARCHAR NOT NULL,
    full_needed  BOOLEAN NOT NULL DEFAULT false,
    checked_at   TIMESTAMP NOT NULL,
    mode         VARCHAR NOT NULL,       -- full | delta: how the last check ran
    why          VARCHAR,                -- full: why (first check, --full, what changed)
    changed      BIGINT,                 -- delta: changed file rows it started from
    scope_files  BIGINT,                 -- delta: files in the groups re-evaluated
    replanned    BIGINT                  -- delta: SOPInstanceUIDs whose plan row was rebuilt
);

-- The keys of every files row a scan wrote since the last check: for a changed row both its old
-- and its new values, for a vanished one its values; written by the scan in the transaction that
-- changes the row, consumed (deleted) by the check that re-evaluates their groups. Only recorded
-- once a check_state row exists (before the first check every check is a full one).
CREATE TABLE check_dirty (
    path                VARCHAR NOT NULL,
    sop_instance_uid    VARCHAR,
    study_instance_uid  VARCHAR,
    series_instance_uid VARCHAR,
    accession_number    VARCHAR,
    patient_id          VARCHAR,
    scan_id             INTEGER
);
