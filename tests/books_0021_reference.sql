-- The books' table macros as schema 0017 and 0021 defined them (stored_content_of, outgoing_of,
-- books_of, final_states_of), renamed *_0021: tests/test_books_narrow.py checks that 0023's
-- narrower bodies give the same rows. Generated from those migrations' text; do not edit by hand.

CREATE OR REPLACE MACRO stored_content_of_0021(keyed) AS TABLE
SELECT target, sop_instance_uid, transfer_id, finished AS stored_at, path, wire_xxh3, source_xxh3,
       sent_patient_id, sent_header, is_update, outcome = 'warning' AS with_warning
FROM transfers
WHERE outcome IN ('stored', 'warning') AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
QUALIFY row_number() OVER (PARTITION BY target, sop_instance_uid ORDER BY finished DESC, transfer_id DESC) = 1;

CREATE OR REPLACE MACRO outgoing_of_0021(keyed) AS TABLE
WITH fc AS (
    SELECT f AS fr, f.path, f.sop_instance_uid, f.dataset_xxh3, f.patient_id,
           CASE WHEN manifest_rewrites() THEN corrections_of(mc.demographics) END AS c,
           CASE WHEN manifest_rewrites() THEN list_transform(mc.demographics, lambda x: x.attribute) END AS corrected
    FROM files f LEFT JOIN manifest_compare mc ON mc.path = f.path
    WHERE (NOT keyed OR f.sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
)
SELECT
    fc.path, fc.sop_instance_uid, fc.dataset_xxh3,
    coalesce(fc.corrected, []) AS corrected,                -- the attributes the manifest corrects
    coalesce(mp.new_patient_id, fc.c.PatientID, fc.patient_id) AS patient_id_out,
    mp.new_patient_id IS NOT NULL AS mapped,
    outgoing_header(fc.fr, fc.c, mp) AS header
FROM fc
LEFT JOIN patient_map mp ON mp.old_patient_id = coalesce(fc.c.PatientID, fc.patient_id);

CREATE OR REPLACE MACRO books_of_0021(tgt, keyed) AS TABLE
WITH st AS (
    SELECT * FROM stored_content_of_0021(keyed) WHERE target = tgt
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
    LEFT JOIN outgoing_of_0021(keyed) o ON o.path = p.path
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

CREATE OR REPLACE MACRO final_states_of_0021(tgt, keyed) AS TABLE
WITH st AS (
    SELECT sop_instance_uid, with_warning, stored_at FROM stored_content_of_0021(keyed) WHERE target = tgt
),
ev AS (   -- the latest evidence per instance and mode, since the latest store
    SELECT v.sop_instance_uid, v.mode, v.outcome, v.verified_at,
           CASE v.mode WHEN 'retrieve' THEN 3 WHEN 'commit' THEN 2 ELSE 1 END AS strength,
           v.mode || ': ' || v.outcome || coalesce(' (' || v.detail || ')', '')
               || ' at ' || strftime(v.verified_at, '%Y-%m-%d %H:%M:%S') AS said
    FROM verification_evidence v JOIN st ON st.sop_instance_uid = v.sop_instance_uid
    WHERE v.target = tgt AND v.outcome IN ('verified', 'missing_on_target', 'mismatch') AND (NOT keyed OR v.sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
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
    WHERE target = tgt AND outcome NOT IN ('verified', 'missing_on_target', 'mismatch') AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
    QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY verified_at DESC, verification_id DESC) = 1
),
lastfail AS (
    SELECT sop_instance_uid, coalesce(status_hex || ' ' || status_meaning, error) AS why
    FROM (SELECT * FROM transfers WHERE target = tgt AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
          QUALIFY row_number() OVER (PARTITION BY target, sop_instance_uid ORDER BY finished DESC, transfer_id DESC) = 1)
    WHERE outcome = 'failed'  -- view transfer_latest, for this target (and the keys)
),
dups AS (
    SELECT sop_instance_uid, count(*) FILTER (WHERE disposition = 'skip_duplicate') AS skipped
    FROM plan_files WHERE (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys)) GROUP BY 1
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
LEFT JOIN books_of_0021(tgt, keyed) bk USING (sop_instance_uid)
LEFT JOIN decisions d USING (sop_instance_uid)
LEFT JOIN st USING (sop_instance_uid)
LEFT JOIN best b USING (sop_instance_uid)
LEFT JOIN contra c USING (sop_instance_uid)
LEFT JOIN tried t USING (sop_instance_uid)
LEFT JOIN lastfail lf USING (sop_instance_uid)
LEFT JOIN dups dp USING (sop_instance_uid)
WHERE (NOT keyed OR p.sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys));
