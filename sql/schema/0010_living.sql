-- Living data: the books follow a source that changes (issue 14).
-- What each store put on the target, so a later change of the source (or of the PatientID map)
-- is seen as an update; decisions on instances deleted in the source; the per-target books
-- (macro books) and the final states built on them.

-- What was read and sent, per C-STORE attempt (filled by ops/insert_transfers from the file row
-- the queue read; the worker checks the bytes against dataset_xxh3 on the way).
ALTER TABLE transfers ADD COLUMN source_xxh3 VARCHAR;       -- files.dataset_xxh3 of the copy read
ALTER TABLE transfers ADD COLUMN sent_patient_id VARCHAR;   -- the PatientID the target got (after any map)
ALTER TABLE transfers ADD COLUMN is_update BOOLEAN DEFAULT false;  -- the target already had this instance
ALTER TABLE transfers ADD COLUMN sent_header STRUCT(
    PatientName VARCHAR, PatientBirthDate VARCHAR, PatientSex VARCHAR, IssuerOfPatientID VARCHAR,
    AccessionNumber VARCHAR, StudyDate VARCHAR, StudyDescription VARCHAR, Modality VARCHAR,
    StudyInstanceUID VARCHAR, SeriesInstanceUID VARCHAR, SOPClassUID VARCHAR, TransferSyntaxUID VARCHAR,
    SeriesNumber INTEGER, InstanceNumber INTEGER, Rows INTEGER, Columns INTEGER, NumberOfFrames INTEGER,
    PixelDataLength BIGINT);                                -- the indexed attributes of the copy sent

-- Attempts recorded before this migration: the best knowledge there is.
UPDATE transfers t SET
    source_xxh3 = CASE WHEN t.rewritten IS NULL THEN t.wire_xxh3 ELSE f.dataset_xxh3 END,
    sent_patient_id = CASE WHEN t.rewritten LIKE '%patient_id_mapped%'
                           THEN coalesce(m.new_patient_id, f.patient_id) ELSE f.patient_id END,
    sent_header = {'PatientName': f.patient_name, 'PatientBirthDate': f.patient_birth_date,
                   'PatientSex': f.patient_sex, 'IssuerOfPatientID': f.issuer_of_patient_id,
                   'AccessionNumber': f.accession_number, 'StudyDate': f.study_date,
                   'StudyDescription': f.study_description, 'Modality': f.modality,
                   'StudyInstanceUID': f.study_instance_uid, 'SeriesInstanceUID': f.series_instance_uid,
                   'SOPClassUID': f.sop_class_uid, 'TransferSyntaxUID': f.transfer_syntax_uid,
                   'SeriesNumber': f.series_number, 'InstanceNumber': f.instance_number, 'Rows': f.rows,
                   'Columns': f.columns, 'NumberOfFrames': f.number_of_frames,
                   'PixelDataLength': f.pixel_data_length}
FROM files f LEFT JOIN patient_map m ON m.old_patient_id = f.patient_id
WHERE f.path = t.path;

-- Decisions gain keep and remove: for an instance stored on a target and deleted in the source.
-- (DuckDB cannot change a CHECK constraint in place: the table is rebuilt, its rows kept.)
CREATE TABLE decisions_v10 (
    sop_instance_uid VARCHAR PRIMARY KEY,
    action           VARCHAR NOT NULL CHECK (action IN ('send', 'skip', 'hold', 'keep', 'remove')),
    path             VARCHAR,
    note             VARCHAR NOT NULL,
    decided_at       TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP,
    decided_by       VARCHAR
);
INSERT INTO decisions_v10 SELECT sop_instance_uid, action, path, note, decided_at, decided_by FROM decisions;
DROP TABLE decisions;
ALTER TABLE decisions_v10 RENAME TO decisions;

-- The latest successful store per target and instance, with what it put there.
CREATE VIEW stored_content AS
SELECT target, sop_instance_uid, transfer_id, finished AS stored_at, path, wire_xxh3, source_xxh3,
       sent_patient_id, sent_header, is_update, outcome = 'warning' AS with_warning
FROM transfers
WHERE outcome IN ('stored', 'warning')
QUALIFY row_number() OVER (PARTITION BY target, sop_instance_uid ORDER BY finished DESC, transfer_id DESC) = 1;

-- books('AE@host:port'): per planned instance, how the target's copy stands against the source now.
-- content: NULL (nothing stored there), 'deleted_in_source' (every source copy vanished),
-- 'changed' (the source content or its PatientID mapping differs from what was stored: an update
-- is due), 'update_unproven' (an update was stored, not yet retrieved back), 'stale' (retrieved
-- back after the update: the target kept its old copy), 'update_verified', or 'current'.
CREATE MACRO books(tgt) AS TABLE
WITH st AS (
    SELECT * FROM stored_content WHERE target = tgt
),
gone AS (  -- instances whose every source copy vanished, and since when
    SELECT sop_instance_uid, max(scanned_at) AS missing_since
    FROM files WHERE sop_instance_uid IS NOT NULL
    GROUP BY 1 HAVING bool_and(status = 'missing')
),
same AS (  -- the stored content is still one of the instance's sound copies
    SELECT DISTINCT st.sop_instance_uid
    FROM st JOIN files f ON f.sop_instance_uid = st.sop_instance_uid AND f.dataset_xxh3 = st.source_xxh3
    WHERE f.status IN ('ok', 'suspect')
),
proof AS (  -- the latest retrieve-back after the latest store
    SELECT v.sop_instance_uid, v.outcome, v.detail, v.header_diff
    FROM verifications v JOIN st ON st.sop_instance_uid = v.sop_instance_uid
    WHERE v.target = tgt AND v.mode = 'retrieve' AND v.verified_at >= st.stored_at
      AND v.outcome IN ('verified', 'mismatch', 'missing_on_target')
    QUALIFY row_number() OVER (PARTITION BY v.sop_instance_uid ORDER BY v.verified_at DESC, v.verification_id DESC) = 1
),
cur AS (
    SELECT p.sop_instance_uid, p.disposition, f.dataset_xxh3, f.patient_name, f.patient_birth_date, f.patient_sex,
           f.issuer_of_patient_id, f.accession_number, f.study_date, f.study_description, f.modality,
           f.study_instance_uid, f.series_instance_uid, f.sop_class_uid, f.transfer_syntax_uid, f.series_number,
           f.instance_number, f.rows, f.columns, f.number_of_frames, f.pixel_data_length,
           coalesce(m.new_patient_id, f.patient_id) AS patient_id_out
    FROM plan p
    LEFT JOIN files f ON f.path = p.path
    LEFT JOIN patient_map m ON m.old_patient_id = f.patient_id
),
j AS (
    SELECT c.sop_instance_uid, c.disposition, st.sop_instance_uid IS NOT NULL AS stored, st.stored_at,
           st.is_update, st.with_warning, st.sent_patient_id, c.patient_id_out, g.missing_since,
           g.sop_instance_uid IS NOT NULL AS gone,
           sm.sop_instance_uid IS NULL AND st.source_xxh3 IS DISTINCT FROM c.dataset_xxh3 AS bytes_changed,
           st.sent_patient_id IS DISTINCT FROM c.patient_id_out AS id_changed,
           pr.outcome AS proof, pr.detail AS proof_detail, pr.header_diff AS proof_diff,
           concat_ws(', ',
               CASE WHEN h.PatientName IS DISTINCT FROM c.patient_name THEN 'PatientName' END,
               CASE WHEN h.PatientBirthDate IS DISTINCT FROM c.patient_birth_date THEN 'PatientBirthDate' END,
               CASE WHEN h.PatientSex IS DISTINCT FROM c.patient_sex THEN 'PatientSex' END,
               CASE WHEN h.IssuerOfPatientID IS DISTINCT FROM c.issuer_of_patient_id THEN 'IssuerOfPatientID' END,
               CASE WHEN h.AccessionNumber IS DISTINCT FROM c.accession_number THEN 'AccessionNumber' END,
               CASE WHEN h.StudyDate IS DISTINCT FROM c.study_date THEN 'StudyDate' END,
               CASE WHEN h.StudyDescription IS DISTINCT FROM c.study_description THEN 'StudyDescription' END,
               CASE WHEN h.Modality IS DISTINCT FROM c.modality THEN 'Modality' END,
               CASE WHEN h.StudyInstanceUID IS DISTINCT FROM c.study_instance_uid THEN 'StudyInstanceUID' END,
               CASE WHEN h.SeriesInstanceUID IS DISTINCT FROM c.series_instance_uid THEN 'SeriesInstanceUID' END,
               CASE WHEN h.SOPClassUID IS DISTINCT FROM c.sop_class_uid THEN 'SOPClassUID' END,
               CASE WHEN h.TransferSyntaxUID IS DISTINCT FROM c.transfer_syntax_uid THEN 'TransferSyntaxUID' END,
               CASE WHEN h.SeriesNumber IS DISTINCT FROM c.series_number THEN 'SeriesNumber' END,
               CASE WHEN h.InstanceNumber IS DISTINCT FROM c.instance_number THEN 'InstanceNumber' END,
               CASE WHEN h.Rows IS DISTINCT FROM c.rows OR h.Columns IS DISTINCT FROM c.columns
                         OR h.NumberOfFrames IS DISTINCT FROM c.number_of_frames THEN 'image size' END,
               CASE WHEN h.PixelDataLength IS DISTINCT FROM c.pixel_data_length THEN 'PixelData' END
           ) AS header_changes
    FROM cur c
    LEFT JOIN st USING (sop_instance_uid)
    LEFT JOIN gone g USING (sop_instance_uid)
    LEFT JOIN same sm USING (sop_instance_uid)
    LEFT JOIN proof pr USING (sop_instance_uid)
    LEFT JOIN (SELECT sop_instance_uid, unnest(sent_header) FROM st) h USING (sop_instance_uid)
)
SELECT
    sop_instance_uid, stored, stored_at, is_update, with_warning, missing_since,
    CASE
        WHEN NOT stored THEN NULL
        WHEN gone THEN 'deleted_in_source'
        WHEN disposition <> 'send' THEN 'current'
        WHEN bytes_changed OR id_changed THEN 'changed'
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
        WHEN bytes_changed OR id_changed THEN 'changed since stored: '
             || concat_ws('; ',
                    CASE WHEN bytes_changed THEN coalesce(nullif(header_changes, ''),
                         'dataset bytes (attributes pacscopy does not index; verify --mode retrieve after the update names them)') END,
                    CASE WHEN id_changed THEN 'PatientID ' || coalesce(sent_patient_id, '(none)') || ' -> '
                         || coalesce(patient_id_out, '(none)') || ' (pacscopy map)' END)
        WHEN is_update AND proof = 'verified' THEN 'update retrieved back: ' || proof_detail
        WHEN is_update AND proof IS NOT NULL THEN 'the target answered success to the update but kept its old copy ('
             || coalesce(proof_detail, proof) || ')'
        WHEN is_update THEN 'update stored, not proven until retrieved back: run pacscopy verify'
        ELSE NULL
    END AS content_why
FROM j;

-- final_states('AE@host:port'): one final state per SOPInstanceUID in the plan, for one target.
-- The evidence is ordered (sql/schema/0006): retrieve is stronger than commit, commit than find;
-- per mode the latest evidence counts, and only evidence gathered after the latest store (an update
-- makes earlier proof worthless). The books (macro books) come first: an instance whose source
-- changed is update_pending whatever was verified before; an update is proven only by a retrieve.
CREATE OR REPLACE MACRO final_states(tgt) AS TABLE
WITH st AS (
    SELECT sop_instance_uid, with_warning, stored_at FROM stored_content WHERE target = tgt
),
ev AS (   -- the latest evidence per instance and mode, since the latest store
    SELECT v.sop_instance_uid, v.mode, v.outcome, v.verified_at,
           CASE v.mode WHEN 'retrieve' THEN 3 WHEN 'commit' THEN 2 ELSE 1 END AS strength,
           v.mode || ': ' || v.outcome || coalesce(' (' || v.detail || ')', '')
               || ' at ' || strftime(v.verified_at, '%Y-%m-%d %H:%M:%S') AS said
    FROM verification_evidence v JOIN st ON st.sop_instance_uid = v.sop_instance_uid
    WHERE v.target = tgt AND v.outcome IN ('verified', 'missing_on_target', 'mismatch')
      AND v.verified_at >= st.stored_at
    QUALIFY row_number() OVER (PARTITION BY v.sop_instance_uid, v.mode
                               ORDER BY v.verified_at DESC, v.verification_id DESC) = 1
),
best AS (  -- the strongest mode's latest evidence
    SELECT * FROM ev
    QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY strength DESC) = 1
),
contra AS (  -- later results of weaker modes that say otherwise (a mismatch is not contradicted by a listing)
    SELECT e.sop_instance_uid, string_agg('later ' || e.said, '; ' ORDER BY e.verified_at) AS said
    FROM ev e JOIN best b USING (sop_instance_uid)
    WHERE e.strength < b.strength AND e.verified_at > b.verified_at AND b.outcome <> 'mismatch'
      AND (e.outcome = 'verified') <> (b.outcome = 'verified')
    GROUP BY 1
),
tried AS (  -- the latest attempt that could not check, per instance: shown, not counted
    SELECT sop_instance_uid, mode || ': ' || outcome || coalesce(' (' || detail || ')', '') AS said
    FROM verification_evidence
    WHERE target = tgt AND outcome NOT IN ('verified', 'missing_on_target', 'mismatch')
    QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY verified_at DESC, verification_id DESC) = 1
),
lastfail AS (
    SELECT sop_instance_uid, coalesce(status_hex || ' ' || status_meaning, error) AS why
    FROM transfer_latest WHERE target = tgt AND outcome = 'failed'
),
dups AS (
    SELECT sop_instance_uid, count(*) FILTER (WHERE disposition = 'skip_duplicate') AS skipped
    FROM plan_files GROUP BY 1
)
SELECT
    p.sop_instance_uid,
    p.study_instance_uid,
    p.patient_id,
    p.disposition,
    CASE
        -- the books first: the source moved on, or the instance waits for a person
        WHEN bk.content = 'deleted_in_source' AND d.action IS NOT NULL THEN 'excluded_decision'
        WHEN bk.content = 'deleted_in_source' THEN 'deleted_in_source'
        WHEN p.disposition = 'hold' AND NOT p.decided THEN 'awaiting_decision'
        WHEN p.disposition = 'hold' THEN 'excluded_held'
        WHEN p.disposition = 'skip' THEN 'excluded_decision'
        WHEN bk.content = 'changed' THEN 'update_pending'
        WHEN bk.content = 'stale' THEN 'stale_on_target'
        WHEN bk.content = 'update_unproven' THEN 'stored_unverified'
        WHEN bk.content = 'update_verified' THEN 'verified'
        -- then the evidence (sql/schema/0006)
        WHEN c.said IS NOT NULL THEN 'disputed'
        WHEN b.outcome IS NOT NULL THEN b.outcome
        WHEN st.sop_instance_uid IS NOT NULL THEN 'stored_unverified'
        WHEN p.disposition = 'send' AND lf.why IS NOT NULL THEN 'failed'
        WHEN p.disposition = 'send' THEN 'not_sent'
        WHEN p.disposition = 'blocked' THEN 'excluded_blocked'
        WHEN p.disposition = 'deleted' THEN 'excluded_deleted'
        WHEN p.disposition = 'quarantine' THEN 'excluded_corrupt'
        ELSE 'unaccounted'
    END AS final_state,
    CASE
        WHEN bk.content = 'deleted_in_source' AND d.action IS NOT NULL THEN 'deleted in the source, '
             || bk.content_why || '; decision ' || d.action || ': ' || d.note
             || CASE WHEN d.action = 'remove' THEN ' (remove it on the target: pacscopy never deletes there)' ELSE '' END
        WHEN bk.content = 'deleted_in_source' THEN bk.content_why
             || '; still on the target: decide with pacscopy decide --action keep|remove'
        WHEN p.disposition = 'hold' AND NOT p.decided THEN p.why || '; decide with pacscopy decide --action send|skip|hold'
        WHEN p.disposition IN ('hold', 'skip') THEN p.why
        WHEN bk.content = 'changed' THEN bk.content_why || '; pacscopy send sends it as an update'
        WHEN bk.content = 'stale' THEN bk.content_why
             || '; make the target accept updates (Orthanc: OverwriteInstances true; dcm4chee: its overwrite policy)'
             || ' and send again, or decide (pacscopy decide)'
        WHEN bk.content IN ('update_unproven', 'update_verified') THEN bk.content_why
        WHEN c.said IS NOT NULL THEN b.said || '; ' || c.said
        WHEN b.outcome IS NOT NULL THEN b.said
        WHEN st.sop_instance_uid IS NOT NULL THEN 'stored' || CASE WHEN st.with_warning THEN ' with a warning' ELSE '' END
             || ', not verified yet: ' || coalesce('the last attempt could not check: ' || t.said, 'run pacscopy verify')
        WHEN p.disposition = 'send' AND lf.why IS NOT NULL THEN 'send failed: ' || lf.why
        WHEN p.disposition = 'send' THEN 'planned, not sent yet'
        ELSE p.why
    END AS reason,
    coalesce(dp.skipped, 0) AS duplicate_files_skipped
FROM plan p
LEFT JOIN books(tgt) bk USING (sop_instance_uid)
LEFT JOIN decisions d USING (sop_instance_uid)
LEFT JOIN st USING (sop_instance_uid)
LEFT JOIN best b USING (sop_instance_uid)
LEFT JOIN contra c USING (sop_instance_uid)
LEFT JOIN tried t USING (sop_instance_uid)
LEFT JOIN lastfail lf USING (sop_instance_uid)
LEFT JOIN dups dp USING (sop_instance_uid)
;
