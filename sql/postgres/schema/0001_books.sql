-- pacscopy's shared books in PostgreSQL: one migration per database, shared by several hosts
-- (README, "Several machines"). Each host keeps its own DuckDB index (files, findings, plan, its
-- own transfers) and publishes here what the others must know: its plan, its claims, its transfers.

-- The migration these books belong to: exactly one row. A local index linked to another
-- migration's books is refused (its index records migration_id, migration 0013).
CREATE TABLE migration (
    migration_id  uuid PRIMARY KEY,
    name          text NOT NULL,
    created       timestamptz NOT NULL DEFAULT now(),
    one_row       boolean NOT NULL DEFAULT true UNIQUE CHECK (one_row)
);

-- The hosts that joined: each one scans its own volumes into its own index.
CREATE TABLE hosts (
    host_id       serial PRIMARY KEY,
    name          text NOT NULL UNIQUE,          -- --host, default the machine's name
    index_path    text,                          -- the host's index, as that host sees it
    joined        timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    plan_published timestamptz,                   -- the latest 'books publish'
    plan_instances bigint
);

-- The plan each host published (the latest one replaces the earlier): one row per SOPInstanceUID it
-- holds a copy of, with check's disposition for it there.
CREATE TABLE plan (
    host_id            integer NOT NULL REFERENCES hosts,
    sop_instance_uid   text NOT NULL,
    study_instance_uid text,
    sop_class_uid      text,
    disposition        text NOT NULL,            -- send | skip_duplicate | exclude | hold | blocked | deleted
    reason             text,
    size               bigint,
    dataset_xxh3       text,
    PRIMARY KEY (host_id, sop_instance_uid)
);
CREATE INDEX plan_sop ON plan (sop_instance_uid);

-- Shares: a host sending with --shard K/N sends only studies whose hash (pacscopy_shard) is K-1 mod N.
-- Two hosts' shares for one target may not overlap (refused by books.register_share).
CREATE TABLE shares (
    target        text NOT NULL,
    host_id       integer NOT NULL REFERENCES hosts,
    k             integer NOT NULL CHECK (k >= 1),
    n             integer NOT NULL CHECK (n >= 1 AND k <= n),
    registered    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, host_id)
);

-- Claims: the host that sends an instance to a target. Taken before sending (INSERT ... ON CONFLICT DO
-- NOTHING RETURNING), so no instance is sent by two hosts. 'sending' until stored; a failed or unsent
-- claim is released (deleted) so another host may try its copy.
CREATE TABLE claims (
    target            text NOT NULL,
    sop_instance_uid  text NOT NULL,
    host_id           integer NOT NULL REFERENCES hosts,
    run_id            integer,                   -- the host's local send run
    state             text NOT NULL DEFAULT 'sending',   -- sending | stored
    claimed           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (target, sop_instance_uid)
);
CREATE INDEX claims_host ON claims (host_id, state);

-- Send runs of every host, and their C-STORE attempts (one row per attempt, written per flush).
CREATE TABLE runs (
    host_id       integer NOT NULL REFERENCES hosts,
    run_id        integer NOT NULL,              -- the host's local send_runs.run_id
    target        text NOT NULL,
    started       timestamptz NOT NULL DEFAULT now(),
    finished      timestamptz,
    shard         text,                          -- K/N or NULL
    outcome       text,
    PRIMARY KEY (host_id, run_id)
);

CREATE TABLE transfers (
    transfer_id       bigserial PRIMARY KEY,
    host_id           integer NOT NULL REFERENCES hosts,
    run_id            integer NOT NULL,
    target            text NOT NULL,
    sop_instance_uid  text NOT NULL,
    started           timestamp,
    finished          timestamp,
    bytes             bigint,
    status            integer,
    outcome           text NOT NULL,             -- stored | warning | failed | retry
    error             text,
    wire_xxh3         text
);
CREATE INDEX transfers_sop ON transfers (target, sop_instance_uid);

-- One state per SOPInstanceUID of the whole migration (every host's plan) for a target:
-- stored (by exactly one host), stored_by_two_hosts, sending (claimed, answer not recorded yet),
-- failed (the latest attempt failed), left (planned 'send' by some host, not sent yet),
-- excluded (no host plans to send it: the reasons of its hosts), stored_unplanned (in no host's plan).
CREATE FUNCTION final_states(tgt text)
RETURNS TABLE (sop_instance_uid text, state text, host text, why text, copies bigint)
LANGUAGE sql STABLE AS $fs$
WITH planned AS (
    SELECT sop_instance_uid, bool_or(disposition = 'send') AS sendable, count(*) AS copies,
           string_agg(DISTINCT disposition || coalesce(': ' || reason, ''), '; ') AS why
    FROM plan GROUP BY 1
), stored AS (
    SELECT sop_instance_uid, count(DISTINCT host_id) AS hosts, min(host_id) AS host_id
    FROM transfers WHERE target = tgt AND outcome IN ('stored', 'warning') GROUP BY 1
), latest AS (
    SELECT DISTINCT ON (sop_instance_uid) sop_instance_uid, outcome, host_id, error
    FROM transfers WHERE target = tgt AND outcome <> 'retry'
    ORDER BY sop_instance_uid, finished DESC, transfer_id DESC
), states AS (
    SELECT coalesce(p.sop_instance_uid, s.sop_instance_uid) AS sop_instance_uid,
           CASE WHEN s.hosts > 1 THEN 'stored_by_two_hosts'
                WHEN s.hosts = 1 AND p.sop_instance_uid IS NULL THEN 'stored_unplanned'
                WHEN s.hosts = 1 THEN 'stored'
                WHEN c.state = 'sending' THEN 'sending'
                WHEN NOT p.sendable THEN 'excluded'
                WHEN l.outcome = 'failed' THEN 'failed'
                ELSE 'left' END AS state,
           coalesce(s.host_id, c.host_id, l.host_id) AS host_id,
           CASE WHEN NOT p.sendable THEN p.why WHEN l.outcome = 'failed' THEN l.error END AS why,
           p.copies
    FROM planned p
    FULL JOIN stored s ON s.sop_instance_uid = p.sop_instance_uid
    LEFT JOIN claims c ON c.target = tgt AND c.sop_instance_uid = coalesce(p.sop_instance_uid, s.sop_instance_uid)
    LEFT JOIN latest l ON l.sop_instance_uid = coalesce(p.sop_instance_uid, s.sop_instance_uid)
)
SELECT st.sop_instance_uid, st.state, h.name AS host, st.why, st.copies
FROM states st LEFT JOIN hosts h USING (host_id)
$fs$;
