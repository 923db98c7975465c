-- Stage one part of a batch of scanned files in temp table scan_batch (ops/scan/stage_begin), from
-- which ops/scan/insert_files or ops/scan/upsert_files write them. The files arrive as the relation
-- frame (pacscopy.index.insert_frame: one column per field of pacscopy.scan.fileread.ROW_COLUMNS
-- but the side columns, one row per file); old_rid: the row id of the row a file replaces (NULL if new).
-- Schema 0030: path_bytes is kept only for a name that is not valid UTF-8 (path is the name itself
-- otherwise), meta_sop_instance_uid only where it differs from sop_instance_uid (macro meta_sop_uid_stored).
-- Schema 0031: sop_hash, the UID's key (macro sop_hash_of).
INSERT INTO scan_batch BY NAME
SELECT * EXCLUDE (mtime_us) REPLACE (
        CASE WHEN path_bytes <> encode(path) THEN path_bytes END AS path_bytes,
        meta_sop_uid_stored(meta_sop_instance_uid, sop_instance_uid) AS meta_sop_instance_uid),
    make_timestamp(mtime_us) AS mtime,
    $volume AS volume,
    $root AS root,
    sop_hash_of(sop_instance_uid::VARCHAR) AS sop_hash,  -- schema 0031: the instance's key
    now()::TIMESTAMP AS first_seen,
    now()::TIMESTAMP AS scanned_at,
    $scan_id AS scan_id
FROM frame;
