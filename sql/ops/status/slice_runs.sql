-- Per big table, the batch's row ids (status_slice_rows) as at most $runs runs (lo..hi), cut at the
-- widest gaps wider than $min_gap rows (a row group): the ranges sql/ops/status/slices.sql passes
-- as constants, which DuckDB checks against each row group's row ids before reading it.
-- Why: a semi join on row ids alone lets DuckDB skip only what lies outside the lowest and highest
-- id; the rows a writer's transaction has just added have ids from ~3.6e16 on (DuckDB's MAX_ROW_ID),
-- so a batch's copy read every row group of the table's columns (at 50 M files ~6 s per 20,000-file scan batch; with the
-- runs 0.03 s: BENCHMARKS.md, "A writer's batch by row-id runs").
WITH g AS (
    SELECT tbl, rid, rid - lag(rid) OVER (PARTITION BY tbl ORDER BY rid) AS gap
    FROM status_slice_rows
),
c AS (
    SELECT tbl, rid,
           coalesce(gap > $min_gap AND row_number() OVER (PARTITION BY tbl ORDER BY gap DESC NULLS LAST) < $runs,
                    false) AS cut
    FROM g
),
r AS (
    SELECT tbl, rid, sum(cut::INTEGER) OVER (PARTITION BY tbl ORDER BY rid) AS run
    FROM c
)
SELECT tbl, (row_number() OVER (PARTITION BY tbl ORDER BY min(rid)) - 1)::INTEGER AS slot,
       min(rid) AS lo, max(rid) AS hi
FROM r
GROUP BY tbl, run
ORDER BY tbl, slot;
