-- plan_auto without its PRIMARY KEY index (issue 15: 5 million instances checked in under a minute).
--
-- check rebuilds plan_auto whole (DELETE, then one INSERT of every instance, ops/check/build_plan);
-- the PRIMARY KEY made DuckDB keep an ART index of every SOPInstanceUID string next to it: at 5 M
-- instances inserting it cost ~5 CPU-s more than the rows themselves, and a second full check
-- (DELETE and INSERT of the same 5 M keys in one transaction) ran out of the default 1 GB budget.
-- Nothing looks a single row up by it, and one row per SOPInstanceUID is what build_plan writes
-- (it groups by SOPInstanceUID; an incremental check deletes the rows it rebuilds first):
-- tests/test_plan_unique.py asserts it after full and incremental checks.
-- Same columns, same NOT NULLs, same rows; the views (plan, plan_files, ...) name the table and
-- read the new one.
CREATE TABLE plan_auto_0022 (
    sop_instance_uid VARCHAR NOT NULL,
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
INSERT INTO plan_auto_0022 SELECT * FROM plan_auto;
DROP TABLE plan_auto;
ALTER TABLE plan_auto_0022 RENAME TO plan_auto;

-- build_plan's sort key for the copy of an instance to send, one number, smallest first: sound
-- (ok, suspect, corrupt, then missing), then a Part 10 file in explicit VR little endian, then any
-- Part 10 file (flags above bit 64), then the most recent scan (its time negated below them); ties
-- are broken by path. A HUGEINT instead of a struct of the same fields keeps the aggregation narrow.
CREATE MACRO plan_rank(status, has_meta, transfer_syntax_uid, scanned_at) AS
    ((CASE status WHEN 'ok' THEN 0 WHEN 'suspect' THEN 1 WHEN 'corrupt' THEN 2 ELSE 3 END) * 4
     + (NOT coalesce(has_meta AND transfer_syntax_uid = '1.2.840.10008.1.2.1', false))::INTEGER * 2
     + (NOT coalesce(has_meta, false))::INTEGER)::HUGEINT * 18446744073709551616
    - epoch_us(scanned_at)::HUGEINT;
