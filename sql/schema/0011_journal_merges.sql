-- Concurrent use (issue 13): a send records into its own journal in <index>.run/ and merges it
-- into the index in short transactions; each merge commits its rows together with the offset
-- it reached here, so a journal line is merged exactly once, whatever is killed when.
CREATE TABLE journal_merges (
    journal      VARCHAR PRIMARY KEY,  -- the journal's file name in <index>.run/
    run_id       INTEGER,              -- the send run it records (send_runs.run_id)
    target       VARCHAR,
    pid          INTEGER,              -- the process that wrote it, and where
    host         VARCHAR,
    merged_bytes BIGINT NOT NULL,      -- the journal is merged up to this byte offset (whole lines only)
    merged_lines BIGINT NOT NULL,      -- lines merged so far
    first_merged TIMESTAMP NOT NULL,
    merged_at    TIMESTAMP NOT NULL,   -- the latest merge: the index's figures for this run are as of then
    merged_by    INTEGER,              -- pid of the process that merged last (the writer, or another after its end)
    finished     BOOLEAN NOT NULL DEFAULT false  -- the run's end is merged
);
