-- Initial index schema: one row per file path, and one row per scan run.
CREATE TABLE files (
    path                  VARCHAR PRIMARY KEY,  -- absolute path; bytes that are not UTF-8 shown as \xNN
    path_bytes            BLOB NOT NULL,        -- the exact file name bytes, so the sender can open it
    volume                VARCHAR NOT NULL,     -- restored volume label (--volume, default: root folder name)
    root                  VARCHAR NOT NULL,     -- the scan root this file was found under
    size                  BIGINT,
    mtime                 TIMESTAMP,
    mtime_ns              BIGINT,
    xxh3                  VARCHAR,              -- xxh3_128 of the whole file, hex
    dataset_xxh3          VARCHAR,              -- xxh3_128 of the dataset bytes after the file meta (what C-STORE sends)
    status                VARCHAR NOT NULL,     -- ok | corrupt | suspect | dicomdir | not_dicom | unreadable | skipped | missing
    reason                VARCHAR,              -- machine-readable reason where status <> 'ok'
    detail                VARCHAR,              -- human-readable detail (offsets, OS error)
    has_meta              BOOLEAN,              -- Part 10 file (preamble + DICM + group 0002)
    dataset_offset        BIGINT,               -- byte offset where the dataset starts after the file meta
    transfer_syntax_uid   VARCHAR,              -- from the file meta, or detected for raw datasets
    detected_syntax       VARCHAR,              -- encoding found in the bytes when it differs from the meta
    meta_sop_class_uid    VARCHAR,              -- (0002,0002) MediaStorageSOPClassUID
    meta_sop_instance_uid VARCHAR,              -- (0002,0003) MediaStorageSOPInstanceUID
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
    rows                  INTEGER,
    columns               INTEGER,
    pixel_data_offset     BIGINT,               -- offset of PixelData's value (in the inflated dataset if deflated)
    pixel_data_length     BIGINT,
    encapsulated          BOOLEAN,              -- compressed (encapsulated) pixel data
    first_seen            TIMESTAMP NOT NULL,
    scanned_at            TIMESTAMP NOT NULL,   -- when this row's content was last read
    scan_id               INTEGER NOT NULL
);

CREATE TABLE scans (
    scan_id     INTEGER PRIMARY KEY,
    root        VARCHAR NOT NULL,
    volume      VARCHAR NOT NULL,
    started     TIMESTAMP NOT NULL,
    finished    TIMESTAMP,                      -- NULL: the run did not finish (killed)
    rehash      BOOLEAN NOT NULL,
    files_new       BIGINT,
    files_changed   BIGINT,
    files_unchanged BIGINT,
    files_missing   BIGINT,
    bytes_read      BIGINT,
    version     VARCHAR
);
