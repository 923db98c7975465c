-- Sending: one row per C-STORE attempt, the runs, and the PatientID mapping.

CREATE SEQUENCE transfer_id_seq;

CREATE TABLE send_runs (
    run_id      INTEGER PRIMARY KEY,
    target      VARCHAR NOT NULL,        -- AE@host:port
    started     TIMESTAMP NOT NULL,
    finished    TIMESTAMP,               -- NULL: the run was killed
    associations INTEGER,
    max_rate    BIGINT,                  -- bytes/s cap, NULL: none
    time_window VARCHAR,                 -- HH:MM-HH:MM, NULL: always
    selection   VARCHAR,                 -- --where, --limit as given
    queued      BIGINT,
    stored      BIGINT,
    warnings    BIGINT,
    failed      BIGINT,
    not_sent    BIGINT,
    bytes       BIGINT,
    outcome     VARCHAR                  -- complete | incomplete | target_down | interrupted
);

CREATE TABLE transfers (
    transfer_id      BIGINT PRIMARY KEY DEFAULT nextval('transfer_id_seq'),
    run_id           INTEGER,
    target           VARCHAR NOT NULL,
    sop_instance_uid VARCHAR NOT NULL,
    path             VARCHAR NOT NULL,   -- the file sent (files.path)
    started          TIMESTAMP NOT NULL,
    finished         TIMESTAMP NOT NULL,
    bytes            BIGINT,             -- dataset bytes that went over the wire
    status           INTEGER,            -- DIMSE status of the C-STORE response; NULL: no response
    status_hex       VARCHAR,            -- the same as 0xHHHH
    status_meaning   VARCHAR,            -- pynetdicom's description of the status
    outcome          VARCHAR NOT NULL,   -- stored | warning | failed | retry
    error            VARCHAR,            -- why it failed or is retried (association rejected, aborted, timeout...)
    wire_xxh3        VARCHAR,            -- xxh3_128 of the dataset bytes sent
    transfer_syntax_uid VARCHAR,         -- the syntax the dataset was sent in
    rewritten        VARCHAR,            -- NULL: streamed untouched; else what was changed (patient_id_mapped, transcoded)
    association      INTEGER             -- which parallel association sent it
);

CREATE TABLE patient_map (
    old_patient_id       VARCHAR PRIMARY KEY,
    new_patient_id       VARCHAR NOT NULL,
    issuer_of_patient_id VARCHAR,
    loaded_at            TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP,
    source               VARCHAR          -- the CSV it came from
);

-- The latest attempt per target and instance.
CREATE VIEW transfer_latest AS
SELECT * FROM transfers
QUALIFY row_number() OVER (PARTITION BY target, sop_instance_uid ORDER BY finished DESC, transfer_id DESC) = 1;

-- Instances the target answered success (or a storing warning) for.
CREATE VIEW stored AS
SELECT target, sop_instance_uid, max(finished) AS stored_at, arg_max(path, finished) AS path,
       arg_max(wire_xxh3, finished) AS wire_xxh3, bool_or(outcome = 'warning') AS with_warning
FROM transfers
WHERE outcome IN ('stored', 'warning')
GROUP BY ALL;
