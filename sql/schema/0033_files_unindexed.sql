-- files without its PRIMARY KEY index (issue 12: a rescan of 1 % of a 50 M-file index ran out of
-- memory; BENCHMARKS.md, "files without the path index").
--
-- The PRIMARY KEY on path made DuckDB keep an ART index of every path (~92 bytes each) beside the
-- table, the only such index on a big table (plan_auto lost its own in 0022 for the same reason).
-- Each write of a scan batch inserted into it: at 50 M files one 5,000-row INSERT of a volume's
-- rescan took 54.5 s, and the pages it touched stayed pinned until the commit, so the same
-- transaction's keeping of status's figures could not pin a block and ran out of memory.
-- Nothing looks a path up through it any more: the scan finds the rows it replaces by the row ids
-- its root's known files gave (ops/scan/upsert_find), the rest join by hash. One row per path is
-- kept by the one writer of files, the scan: a root's known files are read at its start and a
-- file found again replaces its row (deleted by row id, inserted anew); one scan per root, and a
-- scan of a root inside or above another running scan's root is refused (pacscopy.scan.lock_roots).
-- tests/test_files_unindexed.py asserts one row per path after every kind of rescan.
-- Same columns in the same order, same NOT NULLs, same rows in the same order; the views and
-- macros name the table and read the new one.
CREATE TABLE files_0033 (
    path                  VARCHAR NOT NULL,     -- absolute path; bytes that are not UTF-8 shown as \xNN
    path_bytes            BLOB,                 -- the file name's bytes where they are not path's UTF-8 (0030)
    volume                VARCHAR NOT NULL,
    root                  VARCHAR NOT NULL,
    size                  BIGINT,
    mtime                 TIMESTAMP,
    mtime_ns              BIGINT,
    xxh3                  VARCHAR,
    dataset_xxh3          VARCHAR,
    status                VARCHAR NOT NULL,
    reason                VARCHAR,
    detail                VARCHAR,
    has_meta              BOOLEAN,
    dataset_offset        BIGINT,
    transfer_syntax_uid   VARCHAR,
    detected_syntax       VARCHAR,
    meta_sop_class_uid    VARCHAR,
    meta_sop_instance_uid VARCHAR,              -- NULL where it equals sop_instance_uid (0030)
    sop_instance_uid      VARCHAR,
    sop_class_uid         VARCHAR,
    study_instance_uid    VARCHAR,
    series_instance_uid   VARCHAR,
    patient_id            VARCHAR,
    issuer_of_patient_id  VARCHAR,
    patient_name          VARCHAR,
    patient_birth_date    VARCHAR,
    patient_sex           VARCHAR,
    accession_number      VARCHAR,
    study_date            VARCHAR,
    study_description     VARCHAR,
    modality              VARCHAR,
    series_number         INTEGER,
    instance_number       INTEGER,
    number_of_frames      INTEGER,
    "rows"                INTEGER,
    "columns"             INTEGER,
    pixel_data_offset     BIGINT,
    pixel_data_length     BIGINT,
    encapsulated          BOOLEAN,
    first_seen            TIMESTAMP NOT NULL,
    scanned_at            TIMESTAMP NOT NULL,
    scan_id               INTEGER NOT NULL,
    sop_hash              UBIGINT NOT NULL      -- sop_hash_of(sop_instance_uid) (0031)
);
INSERT INTO files_0033 SELECT * FROM files;
DROP TABLE files;
ALTER TABLE files_0033 RENAME TO files;
