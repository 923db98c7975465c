-- Living data, continued (issue 14): a correction in the old PACS's database is an update too.
-- What pacscopy sends is not always the file as scanned: the manifest's corrections (pacscopy
-- manifest load, policy demographics=rewrite) and the PatientID map are written on the way out.
-- The view outgoing says, per file, what the target gets now; a transfer records it (ops/send/
-- insert_transfers) and the books (macro books) compare what was stored with it, so a manifest
-- loaded after a send that corrects a stored instance's demographics plans it as an update, and
-- says which attributes.

-- manifest_corrections(f, m): a file row and its manifest row (as structs) -> per attribute the
-- value the old PACS's database corrects it to, NULL where it corrects nothing (the rules of view
-- manifest_compare: a NULL in the manifest is no correction, names compared with norm_name).
CREATE MACRO manifest_corrections(f, m) AS {
    'PatientID': CASE WHEN m.patient_id IS NOT NULL AND m.patient_id IS DISTINCT FROM f.patient_id
                      THEN m.patient_id END,
    'IssuerOfPatientID': CASE WHEN m.issuer_of_patient_id IS NOT NULL
                               AND m.issuer_of_patient_id IS DISTINCT FROM f.issuer_of_patient_id
                              THEN m.issuer_of_patient_id END,
    'PatientName': CASE WHEN m.patient_name IS NOT NULL AND norm_name(m.patient_name) IS DISTINCT FROM norm_name(f.patient_name)
                        THEN m.patient_name END,
    'PatientBirthDate': CASE WHEN m.patient_birth_date IS NOT NULL AND m.patient_birth_date IS DISTINCT FROM f.patient_birth_date
                             THEN m.patient_birth_date END,
    'PatientSex': CASE WHEN m.patient_sex IS NOT NULL AND m.patient_sex IS DISTINCT FROM upper(f.patient_sex)
                       THEN m.patient_sex END,
    'AccessionNumber': CASE WHEN m.accession_number IS NOT NULL AND m.accession_number IS DISTINCT FROM f.accession_number
                            THEN m.accession_number END,
    'StudyDate': CASE WHEN m.study_date IS NOT NULL AND m.study_date IS DISTINCT FROM f.study_date
                      THEN m.study_date END};

-- Does send write the manifest's corrections (manifest policy demographics=rewrite, the default)?
CREATE MACRO manifest_rewrites() AS
    coalesce((SELECT action FROM manifest_policy WHERE rule = 'demographics'), 'rewrite') = 'rewrite';

-- What send writes for file row f with corrections c (manifest_corrections, NULL: none) and the
-- patient_map row mp of its (corrected) PatientID: the header it records as sent_header.
CREATE MACRO outgoing_header(f, c, mp) AS {
    'PatientName': coalesce(c.PatientName, f.patient_name),
    'PatientBirthDate': coalesce(c.PatientBirthDate, f.patient_birth_date),
    'PatientSex': coalesce(c.PatientSex, f.patient_sex),
    'IssuerOfPatientID': coalesce(mp.issuer_of_patient_id, c.IssuerOfPatientID, f.issuer_of_patient_id),
    'AccessionNumber': coalesce(c.AccessionNumber, f.accession_number),
    'StudyDate': coalesce(c.StudyDate, f.study_date),
    'StudyDescription': f.study_description, 'Modality': f.modality,
    'StudyInstanceUID': f.study_instance_uid, 'SeriesInstanceUID': f.series_instance_uid,
    'SOPClassUID': f.sop_class_uid, 'TransferSyntaxUID': f.transfer_syntax_uid,
    'SeriesNumber': f.series_number, 'InstanceNumber': f.instance_number, 'Rows': f.rows,
    'Columns': f.columns, 'NumberOfFrames': f.number_of_frames, 'PixelDataLength': f.pixel_data_length};

-- corrections_of(manifest_compare.demographics): the same struct as manifest_corrections, from the
-- list view manifest_compare builds for the files that differ from the manifest.
CREATE MACRO corrections_of(d) AS CASE WHEN len(d) > 0 THEN {
    'PatientID': list_filter(d, lambda x: x.attribute = 'PatientID')[1].manifest,
    'IssuerOfPatientID': list_filter(d, lambda x: x.attribute = 'IssuerOfPatientID')[1].manifest,
    'PatientName': list_filter(d, lambda x: x.attribute = 'PatientName')[1].manifest,
    'PatientBirthDate': list_filter(d, lambda x: x.attribute = 'PatientBirthDate')[1].manifest,
    'PatientSex': list_filter(d, lambda x: x.attribute = 'PatientSex')[1].manifest,
    'AccessionNumber': list_filter(d, lambda x: x.attribute = 'AccessionNumber')[1].manifest,
    'StudyDate': list_filter(d, lambda x: x.attribute = 'StudyDate')[1].manifest} END;

-- outgoing: per file, what pacscopy would send now (file -> manifest corrections -> map), as
-- ops/send/send_queue computes it for what it queues (and ops/send/insert_transfers for a batch).
CREATE VIEW outgoing AS
WITH fc AS (
    SELECT f AS fr, f.path, f.sop_instance_uid, f.dataset_xxh3, f.patient_id,
           CASE WHEN manifest_rewrites() THEN corrections_of(mc.demographics) END AS c,
           CASE WHEN manifest_rewrites() THEN list_transform(mc.demographics, lambda x: x.attribute) END AS corrected
    FROM files f LEFT JOIN manifest_compare mc ON mc.path = f.path
)
SELECT
    fc.path, fc.sop_instance_uid, fc.dataset_xxh3,
    coalesce(fc.corrected, []) AS corrected,                -- the attributes the manifest corrects
    coalesce(mp.new_patient_id, fc.c.PatientID, fc.patient_id) AS patient_id_out,
    mp.new_patient_id IS NOT NULL AS mapped,
    outgoing_header(fc.fr, fc.c, mp) AS header
FROM fc
LEFT JOIN patient_map mp ON mp.old_patient_id = coalesce(fc.c.PatientID, fc.patient_id);

-- Attempts recorded before this migration: the attributes the manifest rewrote (rewritten says
-- which: manifest#N:A+B) and the issuer a map set were recorded with the file's values; the best
-- knowledge of what was sent is the current manifest and map.
UPDATE transfers t SET
    sent_header = {'PatientName': CASE WHEN t.rewritten LIKE '%manifest#%PatientName%' THEN o.header.PatientName ELSE t.sent_header.PatientName END,
        'PatientBirthDate': CASE WHEN t.rewritten LIKE '%manifest#%PatientBirthDate%' THEN o.header.PatientBirthDate ELSE t.sent_header.PatientBirthDate END,
        'PatientSex': CASE WHEN t.rewritten LIKE '%manifest#%PatientSex%' THEN o.header.PatientSex ELSE t.sent_header.PatientSex END,
        'IssuerOfPatientID': CASE WHEN t.rewritten LIKE '%manifest#%IssuerOfPatientID%' OR t.rewritten LIKE '%patient_id_mapped%' THEN o.header.IssuerOfPatientID ELSE t.sent_header.IssuerOfPatientID END,
        'AccessionNumber': CASE WHEN t.rewritten LIKE '%manifest#%AccessionNumber%' THEN o.header.AccessionNumber ELSE t.sent_header.AccessionNumber END,
        'StudyDate': CASE WHEN t.rewritten LIKE '%manifest#%StudyDate%' THEN o.header.StudyDate ELSE t.sent_header.StudyDate END,
        'StudyDescription': t.sent_header.StudyDescription,
        'Modality': t.sent_header.Modality,
        'StudyInstanceUID': t.sent_header.StudyInstanceUID,
        'SeriesInstanceUID': t.sent_header.SeriesInstanceUID,
        'SOPClassUID': t.sent_header.SOPClassUID,
        'TransferSyntaxUID': t.sent_header.TransferSyntaxUID,
        'SeriesNumber': t.sent_header.SeriesNumber,
        'InstanceNumber': t.sent_header.InstanceNumber,
        'Rows': t.sent_header.Rows,
        'Columns': t.sent_header.Columns,
        'NumberOfFrames': t.sent_header.NumberOfFrames,
        'PixelDataLength': t.sent_header.PixelDataLength},
    sent_patient_id = CASE WHEN t.rewritten LIKE '%manifest#%PatientID%' OR t.rewritten LIKE '%patient_id_mapped%'
                           THEN o.patient_id_out ELSE t.sent_patient_id END
FROM outgoing o
WHERE o.path = t.path AND t.sent_header IS NOT NULL
  AND (t.rewritten LIKE '%manifest#%' OR t.rewritten LIKE '%patient_id_mapped%');

-- books('AE@host:port'): per planned instance, how the target's copy stands against the source now.
-- content: NULL (nothing stored there), 'deleted_in_source' (every source copy vanished),
-- 'changed' (what pacscopy would send now differs from what was stored: the source's bytes, its
-- PatientID mapping, or the old PACS's database's corrections (manifest): an update is due),
-- 'update_unproven' (an update was stored, not yet retrieved back), 'stale' (retrieved back after
-- the update: the target kept its old copy), 'update_verified', or 'current'.
CREATE OR REPLACE MACRO books(tgt) AS TABLE
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
cur AS (   -- what pacscopy would send now for the planned copy
    SELECT p.sop_instance_uid, p.disposition, o.dataset_xxh3, o.patient_id_out, o.corrected, o.header AS c
    FROM plan p
    LEFT JOIN outgoing o ON o.path = p.path
),
j AS (
    SELECT cu.sop_instance_uid, cu.disposition, st.sop_instance_uid IS NOT NULL AS stored, st.stored_at,
           st.is_update, st.with_warning, st.sent_patient_id, cu.patient_id_out, g.missing_since,
           g.sop_instance_uid IS NOT NULL AS gone,
           sm.sop_instance_uid IS NULL AND st.source_xxh3 IS DISTINCT FROM cu.dataset_xxh3 AS bytes_changed,
           st.sent_patient_id IS DISTINCT FROM cu.patient_id_out AS id_changed,
           pr.outcome AS proof, pr.detail AS proof_detail, pr.header_diff AS proof_diff,
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
                    CASE WHEN bytes_changed THEN coalesce(nullif(header_changes, ''),
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
