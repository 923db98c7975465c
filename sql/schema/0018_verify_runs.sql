-- Verify runs (issue 13): a verify records its outcomes as it goes (its journal in <index>.run/,
-- merged into the index like a send's), so a killed verify keeps what it checked; the next verify
-- of the same target, mode and selection takes the run up again and skips what it recorded.
CREATE TABLE verify_runs (
    run_id     INTEGER PRIMARY KEY,
    target     VARCHAR NOT NULL,
    mode       VARCHAR NOT NULL,      -- find | commit | retrieve
    selection  VARCHAR,               -- 'all' or 'sample P %'; NULL: a run never taken up again (a proof of updates)
    started    TIMESTAMP NOT NULL,    -- the outcomes of this run are those of its target and mode since
    resumed    INTEGER NOT NULL DEFAULT 0,  -- how often a later verify took it up again
    finished   TIMESTAMP,             -- NULL: interrupted (or running)
    checked    BIGINT                 -- instances checked, over all its resumptions
);
