-- The books evaluated narrow (issue 12): final_states and books give the rows 0017/0021 defined,
-- computed with fewer and narrower joins (BENCHMARKS.md, "issue 12: the full final-states evaluation").
--
-- Before, every planned instance went through a dozen hash joins on its SOPInstanceUID, several of
-- them carrying wide rows: the whole files row as a struct (view outgoing, for every file), the
-- header sent and the header that would be sent now (18 fields each), joined again through
-- unnest(sent_header). At 1 M files the evaluation built hash tables of ~0.6-0.8 GB each and spilled
-- 2.7 GB under the default 1 GB memory limit. Now:
-- - per instance one pass over its files (joined with the plan once) gives whether every copy
--   vanished, the skipped duplicates and whether the stored content is still a sound copy;
-- - the latest attempt and the latest store per instance come from one aggregate over the
--   target's transfers (arg_max by finished, then transfer_id: the order of 0017's windows);
-- - what would be sent now (view outgoing's header) is computed only for the instances it is
--   compared with (stored, planned to be sent), reading only the columns it needs;
-- - final_states reads the books' per-instance results instead of evaluating the store again.
-- A row's values are 0017/0021's (tests/test_books_narrow.py compares both bodies on an archive
-- with every state and every reason).

-- Order of attempts: finished, then transfer_id (0017's windows' ORDER BY), as one number.
-- An instance's key in the joins: md5_number(SOPInstanceUID), as status_instances.sop_key (0020) and
-- manifest.sop_key (0019): 16 bytes instead of a ~55-character string in every hash table.
CREATE MACRO instance_key(uid) AS md5_number(uid);

CREATE MACRO transfer_order(finished, transfer_id) AS
    epoch_us(finished)::HUGEINT * 18446744073709551616 + (transfer_id::HUGEINT + 9223372036854775808);

-- outgoing_of (0017) reading only the columns outgoing_header needs (before: the whole files row).
CREATE OR REPLACE MACRO outgoing_of(keyed) AS TABLE
WITH fc AS (
    SELECT f AS fr, f.path, f.sop_instance_uid, f.dataset_xxh3, f.patient_id,
           CASE WHEN manifest_rewrites() THEN corrections_of(mc.demographics) END AS c,
           CASE WHEN manifest_rewrites() THEN list_transform(mc.demographics, lambda x: x.attribute) END AS corrected
    FROM (SELECT path, sop_instance_uid, dataset_xxh3, patient_id, patient_name, patient_birth_date, patient_sex,
                 issuer_of_patient_id, accession_number, study_date, study_description, modality, study_instance_uid,
                 series_instance_uid, sop_class_uid, transfer_syntax_uid, series_number, instance_number, rows,
                 columns, number_of_frames, pixel_data_length
          FROM files
          WHERE (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))) f
    LEFT JOIN manifest_compare mc ON mc.path = f.path
)
SELECT
    fc.path, fc.sop_instance_uid, fc.dataset_xxh3,
    coalesce(fc.corrected, []) AS corrected,                -- the attributes the manifest corrects
    coalesce(mp.new_patient_id, fc.c.PatientID, fc.patient_id) AS patient_id_out,
    mp.new_patient_id IS NOT NULL AS mapped,
    outgoing_header(fc.fr, fc.c, mp) AS header
FROM fc
LEFT JOIN patient_map mp ON mp.old_patient_id = coalesce(fc.c.PatientID, fc.patient_id);

-- books_of (0021) with what final_states needs besides: per planned instance the books' columns,
--   k: instance_key(sop_instance_uid); the plan's disposition, study_instance_uid, patient_id,
--   decided, why and size; gone: every source copy vanished; skipped: the instance's duplicate
--   files skipped (plan_files); last_failed: why the latest attempt failed (NULL: it did not).
CREATE MACRO books_wide_of(tgt, keyed) AS TABLE
WITH p AS (
    SELECT instance_key(sop_instance_uid) AS k, sop_instance_uid, path, disposition,
           study_instance_uid, patient_id, decided, why, size FROM plan
    WHERE (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
),
tk AS (    -- per instance: the latest attempt and the latest store (0017's windows, as aggregates)
    SELECT instance_key(sop_instance_uid) AS k,
           arg_max(transfer_id, transfer_order(finished, transfer_id)) AS last_id,
           arg_max(outcome, transfer_order(finished, transfer_id)) AS last_outcome,
           arg_max(transfer_id, transfer_order(finished, transfer_id))
               FILTER (WHERE outcome IN ('stored', 'warning')) AS store_id
    FROM transfers
    WHERE target = tgt AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
    GROUP BY 1
),
st AS MATERIALIZED (   -- the latest store (stored_content): what it put on the target
    SELECT tk.k, t.finished AS stored_at, t.source_xxh3, t.sent_patient_id, t.sent_header,
           t.is_update, t.outcome = 'warning' AS with_warning
    FROM transfers t JOIN tk ON tk.store_id = t.transfer_id
    WHERE t.target = tgt
),
lf AS (    -- why the latest attempt failed
    SELECT tk.k, coalesce(t.status_hex || ' ' || t.status_meaning, t.error) AS why
    FROM transfers t JOIN tk ON tk.last_id = t.transfer_id
    WHERE t.target = tgt AND tk.last_outcome = 'failed'
),
fa AS (    -- per planned instance, from its files: every copy vanished, the stored content still a sound copy, duplicates
    SELECT f.k,
           bool_and(f.status = 'missing') AS gone,
           max(f.scanned_at) AS last_scanned,
           bool_or(f.status IN ('ok', 'suspect') AND f.dataset_xxh3 = s.source_xxh3) AS same,
           count(*) FILTER (WHERE (f.path = f.plan_path) IS NOT TRUE AND f.status NOT IN ('missing', 'corrupt', 'suspect')
                                  AND f.disposition = 'send') AS skipped
    FROM (SELECT p.k, f.path, f.status, f.scanned_at, f.dataset_xxh3, p.path AS plan_path, p.disposition
          FROM (SELECT instance_key(sop_instance_uid) AS k, path, status, scanned_at, dataset_xxh3 FROM files
                WHERE sop_instance_uid IS NOT NULL) f
          JOIN p ON p.k = f.k) f
    LEFT JOIN (SELECT k, source_xxh3 FROM st) s ON s.k = f.k
    GROUP BY 1
),
sp AS (    -- the stored instances planned to be sent: their store compared with what would be sent now
    SELECT p.k, p.path, st.source_xxh3, st.sent_patient_id, st.sent_header
    FROM p JOIN st ON st.k = p.k
    WHERE p.disposition = 'send'
),
cu AS (    -- view outgoing for sp's paths only
    SELECT sp.*, o.dataset_xxh3, o.patient_id_out, o.corrected, o.header AS c
    FROM sp LEFT JOIN (
        SELECT fc.path, fc.dataset_xxh3, coalesce(fc.corrected, []) AS corrected,
               coalesce(mp.new_patient_id, fc.c.PatientID, fc.patient_id) AS patient_id_out,
               outgoing_header(fc.fr, fc.c, mp) AS header
        FROM (SELECT f AS fr, f.path, f.dataset_xxh3, f.patient_id,
                     CASE WHEN manifest_rewrites() THEN corrections_of(mc.demographics) END AS c,
                     CASE WHEN manifest_rewrites() THEN list_transform(mc.demographics, lambda x: x.attribute) END AS corrected
              FROM (SELECT path, dataset_xxh3, patient_id, patient_name, patient_birth_date, patient_sex,
                           issuer_of_patient_id, accession_number, study_date, study_description, modality,
                           study_instance_uid, series_instance_uid, sop_class_uid, transfer_syntax_uid, series_number,
                           instance_number, rows, columns, number_of_frames, pixel_data_length
                    FROM files WHERE path IN (SELECT path FROM sp)) f
              LEFT JOIN manifest_compare mc ON mc.path = f.path) fc
        LEFT JOIN patient_map mp ON mp.old_patient_id = coalesce(fc.c.PatientID, fc.patient_id)
    ) o ON o.path = sp.path
),
ac AS (    -- the attributes a rescan found changed, per pair of contents
    SELECT from_xxh3, to_xxh3, min(changed) AS changed FROM attr_changes GROUP BY ALL
),
cmp AS (
    SELECT cu.k, cu.dataset_xxh3, cu.sent_patient_id, cu.patient_id_out, cu.corrected,
           NOT coalesce(fa.same, false) AND cu.source_xxh3 IS DISTINCT FROM cu.dataset_xxh3 AS bytes_changed,
           cu.sent_patient_id IS DISTINCT FROM cu.patient_id_out AS id_changed,
           ac.changed AS attr_changes,
           -- the demographics the old PACS's database (manifest) or a map's issuer set differently now
           CASE WHEN cu.sent_header IS NOT NULL THEN concat_ws(', ',
               CASE WHEN h.PatientName IS DISTINCT FROM c.PatientName THEN 'PatientName' END,
               CASE WHEN h.PatientBirthDate IS DISTINCT FROM c.PatientBirthDate THEN 'PatientBirthDate' END,
               CASE WHEN h.PatientSex IS DISTINCT FROM c.PatientSex THEN 'PatientSex' END,
               CASE WHEN h.IssuerOfPatientID IS DISTINCT FROM c.IssuerOfPatientID THEN 'IssuerOfPatientID' END,
               CASE WHEN h.AccessionNumber IS DISTINCT FROM c.AccessionNumber THEN 'AccessionNumber' END,
               CASE WHEN h.StudyDate IS DISTINCT FROM c.StudyDate THEN 'StudyDate' END) ELSE '' END AS demo_changes,
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
    FROM (SELECT *, sent_header AS h FROM cu) cu
    LEFT JOIN fa ON fa.k = cu.k
    LEFT JOIN ac ON ac.from_xxh3 = cu.source_xxh3 AND ac.to_xxh3 = cu.dataset_xxh3
),
proof AS (  -- the latest retrieve-back after the latest store
    SELECT v.k, v.outcome, v.detail
    FROM (SELECT instance_key(sop_instance_uid) AS k, * FROM verifications
          WHERE target = tgt AND mode = 'retrieve' AND outcome IN ('verified', 'mismatch', 'missing_on_target')
            AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))) v
    JOIN st ON st.k = v.k
    WHERE v.verified_at >= st.stored_at
    QUALIFY row_number() OVER (PARTITION BY v.k ORDER BY v.verified_at DESC, v.verification_id DESC) = 1
),
j AS (
    SELECT p.k, p.sop_instance_uid, p.disposition, p.study_instance_uid, p.patient_id, p.decided, p.why, p.size,
           st.k IS NOT NULL AS stored, st.stored_at,
           st.is_update, st.with_warning, coalesce(fa.gone, false) AS gone,
           CASE WHEN fa.gone THEN fa.last_scanned END AS missing_since,
           fa.skipped, lf.why AS last_failed,
           m.bytes_changed, m.id_changed, m.demo_changes, m.header_changes, m.attr_changes, m.corrected,
           m.sent_patient_id, m.patient_id_out,
           pr.outcome AS proof, pr.detail AS proof_detail
    FROM p
    LEFT JOIN st ON st.k = p.k
    LEFT JOIN fa ON fa.k = p.k
    LEFT JOIN lf ON lf.k = p.k
    LEFT JOIN cmp m ON m.k = p.k
    LEFT JOIN proof pr ON pr.k = p.k
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
    END AS content_why,
    k, disposition, study_instance_uid, patient_id, decided, why, size, gone, skipped, last_failed
FROM j;

CREATE OR REPLACE MACRO books_of(tgt, keyed) AS TABLE
SELECT sop_instance_uid, stored, stored_at, is_update, with_warning, missing_since, content, content_why
FROM books_wide_of(tgt, keyed);

-- final_states_of (0017) and what status and reconcile keep with each state: k (instance_key),
-- size (plan.size), with_warning (the latest store answered with a warning), stored (there is a
-- latest store: stored_content). From books_wide_of: the latest store, the latest failure and the
-- skipped duplicates come with the books (before: evaluated again here).
CREATE MACRO final_states_wide_of(tgt, keyed) AS TABLE
WITH bk AS (
    SELECT * FROM books_wide_of(tgt, keyed)
),
ev AS (   -- the latest evidence per instance and mode, since the latest store
    SELECT v.k, v.mode, v.outcome, v.verified_at, v.detail,
           CASE v.mode WHEN 'retrieve' THEN 3 WHEN 'commit' THEN 2 ELSE 1 END AS strength
    FROM (SELECT instance_key(sop_instance_uid) AS k, * FROM verification_evidence
          WHERE target = tgt AND outcome IN ('verified', 'missing_on_target', 'mismatch')
            AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))) v
    JOIN (SELECT k, stored_at FROM bk WHERE stored) s ON s.k = v.k
    WHERE v.verified_at >= s.stored_at
    QUALIFY row_number() OVER (PARTITION BY v.k, v.mode ORDER BY v.verified_at DESC, v.verification_id DESC) = 1
),
best AS (  -- the strongest mode's latest evidence
    SELECT * FROM ev
    QUALIFY row_number() OVER (PARTITION BY k ORDER BY strength DESC) = 1
),
contra AS (  -- later results of weaker modes that say otherwise (a mismatch is not contradicted by a listing)
    SELECT e.k,
           string_agg('later ' || e.mode || ': ' || e.outcome || coalesce(' (' || e.detail || ')', '')
                      || ' at ' || strftime(e.verified_at, '%Y-%m-%d %H:%M:%S'), '; ' ORDER BY e.verified_at) AS said
    FROM ev e JOIN best b ON b.k = e.k
    WHERE e.strength < b.strength AND e.verified_at > b.verified_at AND b.outcome <> 'mismatch'
      AND (e.outcome = 'verified') <> (b.outcome = 'verified')
    GROUP BY 1
),
tried AS (  -- the latest attempt that could not check, per instance: shown, not counted
    SELECT instance_key(sop_instance_uid) AS k, mode || ': ' || outcome || coalesce(' (' || detail || ')', '') AS said
    FROM verification_evidence
    WHERE target = tgt AND outcome NOT IN ('verified', 'missing_on_target', 'mismatch') AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))
    QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY verified_at DESC, verification_id DESC) = 1
),
x AS (
    SELECT bk.k, bk.sop_instance_uid, bk.study_instance_uid, bk.patient_id, bk.disposition, bk.decided, bk.why,
           bk.size, bk.stored, bk.with_warning, bk.content, bk.content_why, bk.last_failed, bk.skipped,
           d.action, d.note, b.outcome AS best_outcome,
           b.mode || ': ' || b.outcome || coalesce(' (' || b.detail || ')', '')
               || ' at ' || strftime(b.verified_at, '%Y-%m-%d %H:%M:%S') AS best_said,
           c.said AS contra_said, t.said AS tried_said
    FROM bk
    LEFT JOIN decisions d ON d.sop_instance_uid = bk.sop_instance_uid
    LEFT JOIN best b ON b.k = bk.k
    LEFT JOIN contra c ON c.k = bk.k
    LEFT JOIN tried t ON t.k = bk.k
)
SELECT
    sop_instance_uid,
    study_instance_uid,
    patient_id,
    disposition,
    CASE
        -- the books first: the source moved on, or the instance waits for a person
        WHEN content = 'deleted_in_source' AND action IS NOT NULL THEN 'excluded_decision'
        WHEN content = 'deleted_in_source' THEN 'deleted_in_source'
        WHEN disposition = 'hold' AND NOT decided THEN 'awaiting_decision'
        WHEN disposition = 'hold' THEN 'excluded_held'
        WHEN disposition = 'skip' THEN 'excluded_decision'
        WHEN content = 'changed' THEN 'update_pending'
        WHEN content = 'stale' THEN 'stale_on_target'
        WHEN content = 'update_unproven' THEN 'stored_unverified'
        WHEN content = 'update_verified' THEN 'verified'
        -- then the evidence (sql/schema/0006)
        WHEN contra_said IS NOT NULL THEN 'disputed'
        WHEN best_outcome IS NOT NULL THEN best_outcome
        WHEN stored THEN 'stored_unverified'
        WHEN disposition = 'send' AND last_failed IS NOT NULL THEN 'failed'
        WHEN disposition = 'send' THEN 'not_sent'
        WHEN disposition = 'blocked' THEN 'excluded_blocked'
        WHEN disposition = 'deleted' THEN 'excluded_deleted'
        WHEN disposition = 'quarantine' THEN 'excluded_corrupt'
        ELSE 'unaccounted'
    END AS final_state,
    CASE
        WHEN content = 'deleted_in_source' AND action IS NOT NULL THEN 'deleted in the source, '
             || content_why || '; decision ' || action || ': ' || note
             || CASE WHEN action = 'remove' THEN ' (remove it on the target: pacscopy never deletes there)' ELSE '' END
        WHEN content = 'deleted_in_source' THEN content_why
             || '; still on the target: decide with pacscopy decide --action keep|remove'
        WHEN disposition = 'hold' AND NOT decided THEN why || '; decide with pacscopy decide --action send|skip|hold'
        WHEN disposition IN ('hold', 'skip') THEN why
        WHEN content = 'changed' THEN content_why || '; pacscopy send sends it as an update'
        WHEN content = 'stale' THEN content_why
             || '; make the target accept updates (Orthanc: OverwriteInstances true; dcm4chee: its overwrite policy)'
             || ' and send again, or decide (pacscopy decide)'
        WHEN content IN ('update_unproven', 'update_verified') THEN content_why
        WHEN contra_said IS NOT NULL THEN best_said || '; ' || contra_said
        WHEN best_outcome IS NOT NULL THEN best_said
        WHEN stored THEN 'stored' || CASE WHEN with_warning THEN ' with a warning' ELSE '' END
             || ', not verified yet: ' || coalesce('the last attempt could not check: ' || tried_said, 'run pacscopy verify')
        WHEN disposition = 'send' AND last_failed IS NOT NULL THEN 'send failed: ' || last_failed
        WHEN disposition = 'send' THEN 'planned, not sent yet'
        ELSE why
    END AS reason,
    coalesce(skipped, 0) AS duplicate_files_skipped,
    k, size, coalesce(with_warning, false) AS with_warning, stored
FROM x;

CREATE OR REPLACE MACRO final_states_of(tgt, keyed) AS TABLE
SELECT sop_instance_uid, study_instance_uid, patient_id, disposition, final_state, reason, duplicate_files_skipped
FROM final_states_wide_of(tgt, keyed);
