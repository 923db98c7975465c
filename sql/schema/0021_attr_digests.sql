-- Living data (issue 14): an update names every attribute that changed, also those the index does
-- not keep. The scan keeps a compact per-attribute digest of each file (table file_digests) (pacscopy/scan/parse.py,
-- attr_digest: 8 bytes naming the file's list of attributes, then 16 bits per attribute); when a
-- rescan replaces a file's content it compares the old digest with the new one and records which
-- attributes differ (pacscopy/attrdigest.py), for every earlier content of that path. The books
-- (macro books_of) name them in the reason of an update ("changed since stored: SeriesDescription,
-- ReferringPhysicianName, (0009,10xx) private, PixelData"). Nothing here changes a state or a figure:
-- only the reason's text of an instance whose stored content has a recorded comparison.

-- Each sound file's digest, beside files (not in it: the books read every files row, and would
-- read the digests too): one row per path scanned since this migration; a rescan that replaces
-- the content replaces the row (and keeps the old one in attr_versions).
CREATE TABLE file_digests (
    path         VARCHAR NOT NULL,
    dataset_xxh3 VARCHAR NOT NULL,
    attr_digest  BLOB NOT NULL
);

-- Each distinct list of attributes once (the files of a series share theirs): its id is the
-- digest's first 8 bytes (xxh3-64 of the list), the list uint32 little-endian tags.
CREATE TABLE attr_tagsets (
    tagset     BLOB NOT NULL,
    tags       BLOB NOT NULL,
    first_seen TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP
);

-- An earlier content of a path, kept when a rescan replaced it (only changed files: a delta's size).
CREATE TABLE attr_versions (
    path         VARCHAR NOT NULL,
    dataset_xxh3 VARCHAR NOT NULL,
    attr_digest  BLOB NOT NULL,
    replaced_at  TIMESTAMP NOT NULL,
    scan_id      BIGINT
);

-- Which attributes differ between two contents (dataset hashes) of a path: one row per pair.
CREATE TABLE attr_changes (
    from_xxh3   VARCHAR NOT NULL,
    to_xxh3     VARCHAR NOT NULL,
    changed     VARCHAR NOT NULL,     -- e.g. 'SeriesDescription, (0009,10xx) private, PixelData'
    path        VARCHAR NOT NULL,     -- the path whose rescan found it
    recorded_at TIMESTAMP NOT NULL,
    scan_id     BIGINT
);

-- books_of: 0017's body; an update's reason names the attributes attr_changes recorded for the
-- stored content -> the current content (before: the indexed attributes only, and "dataset bytes
-- (attributes pacscopy does not index ...)" when none of those differed). Without such a row
-- (a file scanned before this migration, or the current copy at another path than the one sent)
-- the reason is 0017's. content and every other column are 0017's.
CREATE OR REPLACE MACRO books_of(tgt, keyed) AS TABLE
WITH st AS (
    SELECT * FROM stored_content_of(keyed) WHERE target = tgt
),
gone AS (  -- instances whose every source copy vanished, and since when
    SELECT sop_instance_uid, max(scanned_at) AS missing_since
    FROM files WHERE sop_instance_uid IS NOT NULL AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
    GROUP BY 1 HAVING bool_and(status = 'missing')
),
same AS (  -- the stored content is still one of the instance's sound copies
    SELECT DISTINCT st.sop_instance_uid
    FROM st JOIN files f ON f.sop_instance_uid = st.sop_instance_uid AND f.dataset_xxh3 = st.source_xxh3
    WHERE f.status IN ('ok', 'suspect') AND (NOT keyed OR f.sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
),
proof AS (  -- the latest retrieve-back after the latest store
    SELECT v.sop_instance_uid, v.outcome, v.detail, v.header_diff
    FROM verifications v JOIN st ON st.sop_instance_uid = v.sop_instance_uid
    WHERE v.target = tgt AND v.mode = 'retrieve' AND v.verified_at >= st.stored_at AND (NOT keyed OR v.sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
      AND v.outcome IN ('verified', 'mismatch', 'missing_on_target')
    QUALIFY row_number() OVER (PARTITION BY v.sop_instance_uid ORDER BY v.verified_at DESC, v.verification_id DESC) = 1
),
cur AS (   -- what pacscopy would send now for the planned copy
    SELECT p.sop_instance_uid, p.disposition, o.dataset_xxh3, o.patient_id_out, o.corrected, o.header AS c
    FROM plan p
    LEFT JOIN outgoing_of(keyed) o ON o.path = p.path
    WHERE (NOT keyed OR p.sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
),
ac AS (    -- the attributes a rescan found changed, per pair of contents
    SELECT from_xxh3, to_xxh3, min(changed) AS changed FROM attr_changes GROUP BY ALL
),
j AS (
    SELECT cu.sop_instance_uid, cu.disposition, st.sop_instance_uid IS NOT NULL AS stored, st.stored_at,
           st.is_update, st.with_warning, st.sent_patient_id, cu.patient_id_out, g.missing_since,
           g.sop_instance_uid IS NOT NULL AS gone,
           sm.sop_instance_uid IS NULL AND st.source_xxh3 IS DISTINCT FROM cu.dataset_xxh3 AS bytes_changed,
           st.sent_patient_id IS DISTINCT FROM cu.patient_id_out AS id_changed,
           pr.outcome AS proof, pr.detail AS proof_detail, pr.header_diff AS proof_diff,
           ac.changed AS attr_changes,
           -- the demographics the old PACS's database (manifest) or a map's issuer set differently now
           CASE WHEN st.sent_header IS NOT NULL THEN concat_ws(', ',
               CASE WHEN h.PatientName IS DISTINCT FROM c.PatientName THEN 'PatientName' END,
               CASE WHEN h.PatientBirthDate IS DISTINCT FROM c.PatientBirthDate THEN 'PatientBirthDate' END,
               CASE WHEN h.PatientSex IS DISTINCT FROM c.PatientSex THEN 'PatientSex' END,
               CASE WHEN h.IssuerOfPatientID IS DISTINCT FROM c.IssuerOfPatientID THEN 'IssuerOfPatientID' END,
               CASE WHEN h.AccessionNumber IS DISTINCT FROM c.AccessionNumber THEN 'AccessionNumber' END,
               CASE WHEN h.StudyDate IS DISTINCT FROM c.StudyDate THEN 'StudyDate' END) ELSE '' END AS demo_changes,
           cu.corrected,
           concat_ws(', ',
               CASE WHEN h.PatientName IS DISTINCT FROM c.PatientName THEN 'PatientName' END,
               CASE WHEN h.PatientBirthDate IS DISTINCT FROM c.PatientBirthDate THEN 'PatientBirthDate' END,
               CASE WHEN h.PatientSex IS DISTINCT FROM c.PatientSex THEN 'PatientSex' END,
               CASE WHEN h.IssuerOfPatientID IS DISTINCT FROM c.IssuerOfPatientID THEN 'IssuerOfPatientID' END,
               CASE WHEN h.AccessionNumber IS DISTINCT FROM c.AccessionNumber THEN 'AccessionNumber' END,
               CASE WHEN h.StudyDate IS DISTINCT FROM c.StudyDate THEN 'StudyDate' END,
               CASE WHEN h.StudyDescription IS DISTINCT FROM c.StudyDescription THEN 'StudyDescription' END,
               CASE WHEN h.Modality IS DISTINCT FROM c.Modality THEN 'Modality' END,
               CASE WHEN h.StudyInstanceUID IS DISTINCT FROM c.StudyInstanceUID THEN 'StudyInstanceUID' END,
               CASE WHEN h.SeriesInstanceUID IS DISTINCT FROM c.SeriesInstanceUID THEN 'SeriesInstanceUID' END,
               CASE WHEN h.SOPClassUID IS DISTINCT FROM c.SOPClassUID THEN 'SOPClassUID' END,
               CASE WHEN h.TransferSyntaxUID IS DISTINCT FROM c.TransferSyntaxUID THEN 'TransferSyntaxUID' END,
               CASE WHEN h.SeriesNumber IS DISTINCT FROM c.SeriesNumber THEN 'SeriesNumber' END,
               CASE WHEN h.InstanceNumber IS DISTINCT FROM c.InstanceNumber THEN 'InstanceNumber' END,
               CASE WHEN h.Rows IS DISTINCT FROM c.Rows OR h.Columns IS DISTINCT FROM c.Columns
                         OR h.NumberOfFrames IS DISTINCT FROM c.NumberOfFrames THEN 'image size' END,
               CASE WHEN h.PixelDataLength IS DISTINCT FROM c.PixelDataLength THEN 'PixelData' END
           ) AS header_changes
    FROM cur cu
    LEFT JOIN st USING (sop_instance_uid)
    LEFT JOIN gone g USING (sop_instance_uid)
    LEFT JOIN same sm USING (sop_instance_uid)
    LEFT JOIN proof pr USING (sop_instance_uid)
    LEFT JOIN ac ON ac.from_xxh3 = st.source_xxh3 AND ac.to_xxh3 = cu.dataset_xxh3
    LEFT JOIN (SELECT sop_instance_uid, unnest(sent_header) FROM st) h USING (sop_instance_uid)
)
SELECT
    sop_instance_uid, stored, stored_at, is_update, with_warning, missing_since,
    CASE
        WHEN NOT stored THEN NULL
        WHEN gone THEN 'deleted_in_source'
        WHEN disposition <> 'send' THEN 'current'
        WHEN bytes_changed OR id_changed OR demo_changes <> '' THEN 'changed'
        WHEN is_update AND proof = 'verified' THEN 'update_verified'
        WHEN is_update AND proof IS NOT NULL THEN 'stale'
        WHEN is_update THEN 'update_unproven'
        ELSE 'current'
    END AS content,
    CASE
        WHEN NOT stored THEN NULL
        WHEN gone THEN 'every source copy vanished (first seen missing '
                       || strftime(missing_since, '%Y-%m-%d %H:%M') || ')'
        WHEN disposition <> 'send' THEN NULL
        WHEN bytes_changed OR id_changed OR demo_changes <> '' THEN 'changed since stored: '
             || concat_ws('; ',
                    CASE WHEN bytes_changed THEN coalesce(attr_changes, nullif(header_changes, ''),
                         'dataset bytes (attributes pacscopy does not index; verify --mode retrieve after the update names them)') END,
                    CASE WHEN NOT bytes_changed AND demo_changes <> '' THEN demo_changes
                         || CASE WHEN len(corrected) > 0 THEN ' (the old PACS''s database: pacscopy manifest)'
                                 ELSE ' (a correction sent earlier, by pacscopy manifest or map, no longer applies)' END END,
                    CASE WHEN id_changed THEN 'PatientID ' || coalesce(sent_patient_id, '(none)') || ' -> '
                         || coalesce(patient_id_out, '(none)')
                         || CASE WHEN list_contains(corrected, 'PatientID') THEN ' (the old PACS''s database: pacscopy manifest)'
                                 ELSE ' (pacscopy map)' END END)
        WHEN is_update AND proof = 'verified' THEN 'update retrieved back: ' || proof_detail
        WHEN is_update AND proof IS NOT NULL THEN 'the target answered success to the update but kept its old copy ('
             || coalesce(proof_detail, proof) || ')'
        WHEN is_update THEN 'update stored, not proven until retrieved back: run pacscopy verify'
        ELSE NULL
    END AS content_why
FROM j;
