-- A stored 64-bit key per instance in the big tables (issue 12: work proportional to the change at
-- 50 M files). 0029 sliced the books by hash(SOPInstanceUID), and a writer's batch (status figures
-- kept: sql/ops/status/slices.sql) found its rows by the UID: every slice and every batch hashed or
-- compared every row's ~55-byte UID in files, plan_auto, transfers and verifications. At 50 M files
-- that was ~62 CPU-s per slice (70 slices: 39 minutes for status's first count) and ~15 s per
-- 20,000-row batch of a rescan (BENCHMARKS.md, "50 million files").
-- Column sop_hash (UBIGINT NOT NULL, 8 bytes) holds sop_hash_of(SOPInstanceUID): the high 64 bits of
-- its MD5, the same on every machine and DuckDB version (hash() is not); 0 for a file without a UID.
-- Every writer of the four tables sets it (files: the scan's batches; plan_auto: check's build_plan;
-- transfers: a send's batches and journal merges; verifications: verify's merges), and NOT NULL makes
-- a writer that does not (a duckdb session's INSERT) fail rather than leave rows no slice finds.
-- It is a filter, never an identity: two UIDs may share a key (at 500 M instances, ~0.7 % odds of
-- one pair), so what selects by it compares the UID too (slices.sql), or partitions by it (a slice
-- holds every row of its instances, whatever else falls into it).
CREATE MACRO sop_hash_of(uid) AS coalesce((md5_number(uid) >> 64)::UBIGINT, 0::UBIGINT);

-- (added with a default and then without it: DuckDB cannot set NOT NULL on a column updated in the same
-- transaction of a table with a primary key)
ALTER TABLE files ADD COLUMN sop_hash UBIGINT NOT NULL DEFAULT 0;
ALTER TABLE files ALTER COLUMN sop_hash DROP DEFAULT;
UPDATE files SET sop_hash = sop_hash_of(sop_instance_uid);
ALTER TABLE plan_auto ADD COLUMN sop_hash UBIGINT NOT NULL DEFAULT 0;
ALTER TABLE plan_auto ALTER COLUMN sop_hash DROP DEFAULT;
UPDATE plan_auto SET sop_hash = sop_hash_of(sop_instance_uid);
ALTER TABLE transfers ADD COLUMN sop_hash UBIGINT NOT NULL DEFAULT 0;
ALTER TABLE transfers ALTER COLUMN sop_hash DROP DEFAULT;
UPDATE transfers SET sop_hash = sop_hash_of(sop_instance_uid);
ALTER TABLE verifications ADD COLUMN sop_hash UBIGINT NOT NULL DEFAULT 0;
ALTER TABLE verifications ALTER COLUMN sop_hash DROP DEFAULT;
UPDATE verifications SET sop_hash = sop_hash_of(sop_instance_uid);

-- in_slice(k): the slice of the instance whose sop_hash is k (true when no slice is set).
CREATE OR REPLACE MACRO in_slice(k) AS
    getvariable('pacscopy_slices') IS NULL OR k % getvariable('pacscopy_slices') = getvariable('pacscopy_slice');

-- 0029's plan view and books_wide_of with the slice taken from sop_hash (the plan's rows are filtered
-- in the view only: p and j below read the view).
-- The plan (0002) of the slice set on the session, if any (in_slice: a filter on the plan view's rows is not
-- pushed into its scan of plan_auto; inside the view it is).
CREATE OR REPLACE VIEW plan AS
SELECT
    a.sop_instance_uid,
    coalesce(d.path, a.path) AS path,
    CASE d.action WHEN 'send' THEN 'send' WHEN 'skip' THEN 'skip' WHEN 'hold' THEN 'hold'
                  ELSE a.disposition END AS disposition,
    CASE WHEN d.action IS NOT NULL THEN 'decision: ' || d.note ELSE a.why END AS why,
    d.action IS NOT NULL AS decided,
    a.disposition AS auto_disposition,
    a.why AS auto_why,
    d.note AS decision_note,
    d.decided_at,
    a.copies,
    a.sound_copies,
    a.sop_class_uid,
    a.transfer_syntax_uid,
    a.study_instance_uid,
    a.patient_id,
    a.size,
    a.transcode_to
FROM plan_auto a
LEFT JOIN decisions d USING (sop_instance_uid)
WHERE in_slice(a.sop_hash);

CREATE OR REPLACE MACRO books_wide_of(tgt, keyed) AS TABLE
WITH p AS (  -- the plan, narrow (read again for its other columns at the end: j)
    SELECT instance_key(sop_instance_uid) AS k, path, disposition FROM plan
    WHERE (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))  -- the view is sliced
),
tk AS (    -- per instance: the latest attempt and the latest store (0017's windows, as aggregates)
    SELECT instance_key(sop_instance_uid) AS k,
           arg_max(transfer_id, transfer_order(finished, transfer_id)) AS last_id,
           arg_max(outcome, transfer_order(finished, transfer_id)) AS last_outcome,
           arg_max(transfer_id, transfer_order(finished, transfer_id))
               FILTER (WHERE outcome IN ('stored', 'warning')) AS store_id
    FROM transfers
    WHERE target = tgt AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys)) AND in_slice(sop_hash)
    GROUP BY 1
),
st AS (    -- the latest store (stored_content), narrow: the header sent as its demographics' digest
    SELECT tk.k, t.transfer_id AS store_id, t.finished AS stored_at, t.source_xxh3, t.sent_patient_id,
           t.is_update, t.outcome = 'warning' AS with_warning,
           CASE WHEN t.sent_header IS NOT NULL THEN demographics_digest(t.sent_header) END AS sent_demo
    FROM transfers t JOIN tk ON tk.store_id = t.transfer_id
    WHERE t.target = tgt AND in_slice(t.sop_hash)
),
lf AS (    -- why the latest attempt failed
    SELECT tk.k, coalesce(t.status_hex || ' ' || t.status_meaning, t.error) AS why
    FROM transfers t JOIN tk ON tk.last_id = t.transfer_id
    WHERE t.target = tgt AND in_slice(t.sop_hash) AND tk.last_outcome = 'failed'
),
o AS NOT MATERIALIZED (  -- view outgoing, narrow: per file what would be sent now (content, PatientID, the demographics' digest)
    SELECT fc.path, fc.sop_instance_uid, fc.status, fc.scanned_at, fc.dataset_xxh3,
           coalesce(mp.new_patient_id, fc.c.PatientID, fc.patient_id) AS patient_id_out,
           demographics_digest(outgoing_header(fc.fr, fc.c, mp)) AS demo
    FROM (SELECT f AS fr, f.path, f.sop_instance_uid, f.status, f.scanned_at, f.dataset_xxh3, f.patient_id,
                 CASE WHEN manifest_rewrites() THEN corrections_of(mc.demographics) END AS c
          FROM (SELECT path, sop_instance_uid, status, scanned_at, dataset_xxh3, patient_id, patient_name,
                       patient_birth_date, patient_sex, issuer_of_patient_id, accession_number, study_date,
                       study_description, modality, study_instance_uid, series_instance_uid, sop_class_uid,
                       transfer_syntax_uid, series_number, instance_number, rows, columns, number_of_frames,
                       pixel_data_length
                FROM files) f
          LEFT JOIN manifest_compare mc ON mc.path = f.path) fc
    LEFT JOIN patient_map mp ON mp.old_patient_id = coalesce(fc.c.PatientID, fc.patient_id)
),
os AS NOT MATERIALIZED (  -- o for the files of the slice's instances (the filters in the scan of files)
    SELECT fc.path, fc.sop_instance_uid, fc.status, fc.scanned_at, fc.dataset_xxh3,
           coalesce(mp.new_patient_id, fc.c.PatientID, fc.patient_id) AS patient_id_out,
           demographics_digest(outgoing_header(fc.fr, fc.c, mp)) AS demo
    FROM (SELECT f AS fr, f.path, f.sop_instance_uid, f.status, f.scanned_at, f.dataset_xxh3, f.patient_id,
                 CASE WHEN manifest_rewrites() THEN corrections_of(mc.demographics) END AS c
          FROM (SELECT path, sop_instance_uid, status, scanned_at, dataset_xxh3, patient_id, patient_name,
                       patient_birth_date, patient_sex, issuer_of_patient_id, accession_number, study_date,
                       study_description, modality, study_instance_uid, series_instance_uid, sop_class_uid,
                       transfer_syntax_uid, series_number, instance_number, rows, columns, number_of_frames,
                       pixel_data_length
                FROM files
                WHERE sop_instance_uid IS NOT NULL AND in_slice(sop_hash)
                  AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))) f
          LEFT JOIN manifest_compare mc ON mc.path = f.path) fc
    LEFT JOIN patient_map mp ON mp.old_patient_id = coalesce(fc.c.PatientID, fc.patient_id)
),
fa AS (    -- per planned instance, from its files: every copy vanished, the stored content still a sound copy,
           -- duplicates, and the plan's copy: what would be sent now (paths compared by hash() within an instance)
    SELECT f.k, f.disposition,
           bool_and(f.status = 'missing') AS gone,
           max(f.scanned_at) AS last_scanned,
           bool_or(f.status IN ('ok', 'suspect') AND f.dataset_xxh3 = s.source_xxh3) AS same,
           count(*) FILTER (WHERE (f.ph = f.plan_ph) IS NOT TRUE AND f.status NOT IN ('missing', 'corrupt', 'suspect')
                                  AND f.disposition = 'send') AS skipped,
           bool_or(f.ph = f.plan_ph) AS has_cur,
           any_value(f.dataset_xxh3) FILTER (WHERE f.ph = f.plan_ph) AS cur_xxh3,
           any_value(f.patient_id_out) FILTER (WHERE f.ph = f.plan_ph) AS cur_patient_id,
           any_value(f.demo) FILTER (WHERE f.ph = f.plan_ph) AS cur_demo
    FROM (SELECT p.k, f.ph, f.status, f.scanned_at, f.dataset_xxh3, f.patient_id_out, f.demo, p.plan_ph, p.disposition
          FROM (SELECT k, CASE WHEN path IS NOT NULL THEN hash(path) END AS plan_ph, disposition FROM p) p
          LEFT JOIN (SELECT instance_key(sop_instance_uid) AS k, hash(path) AS ph, status, scanned_at, dataset_xxh3,
                            patient_id_out, demo
                     FROM os) f
                 ON f.k = p.k) f   -- every planned instance, with or without files
    LEFT JOIN (SELECT k, source_xxh3 FROM st) s ON s.k = f.k
    GROUP BY f.k, f.disposition
),
fbk AS (   -- the plan's copy is not one of the instance's files (its path holds another instance's file, or
           -- none: a plan older than a rescan)
    SELECT k, path FROM p
    WHERE k IN (SELECT k FROM fa WHERE disposition = 'send' AND NOT coalesce(has_cur, false))
),
fb AS (    -- for those, what would be sent, by path (the join view outgoing made)
    SELECT b.k, o.dataset_xxh3 AS cur_xxh3, o.patient_id_out AS cur_patient_id, o.demo AS cur_demo
    FROM fbk b LEFT JOIN (SELECT * FROM o WHERE path IN (SELECT path FROM fbk)) o ON o.path = b.path
),
cu AS (    -- the stored instances planned (to be sent): their store against what would be sent now
    SELECT st.k, st.store_id, st.source_xxh3, st.sent_patient_id,
           CASE WHEN fb.k IS NOT NULL THEN fb.cur_xxh3 ELSE fa.cur_xxh3 END AS dataset_xxh3,
           CASE WHEN fb.k IS NOT NULL THEN fb.cur_patient_id ELSE fa.cur_patient_id END AS patient_id_out,
           -- no file at the plan's path: nothing would be sent, every demographic value NULL
           st.sent_demo IS NOT NULL AND st.sent_demo IS DISTINCT FROM coalesce(
               CASE WHEN fb.k IS NOT NULL THEN fb.cur_demo ELSE fa.cur_demo END,
               hash(NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR)) AS demo_differs
    FROM st
    LEFT JOIN fa ON fa.k = st.k
    LEFT JOIN fb ON fb.k = st.k
    WHERE fa.has_cur OR fb.k IS NOT NULL
),
flag AS (  -- the stored instances whose store may differ from what would be sent now: their reasons' texts
    SELECT cu.k, p.path, cu.store_id, cu.source_xxh3, cu.dataset_xxh3
    FROM cu JOIN p ON p.k = cu.k
    WHERE cu.source_xxh3 IS DISTINCT FROM cu.dataset_xxh3 OR cu.sent_patient_id IS DISTINCT FROM cu.patient_id_out
       OR cu.demo_differs
),
ac AS (    -- the attributes a rescan found changed, per pair of contents
    SELECT from_xxh3, to_xxh3, min(changed) AS changed FROM attr_changes GROUP BY ALL
),
det AS (   -- which attributes differ, field by field (0021's comparison), for the flagged instances only
    SELECT fl.k, o.corrected, ac.changed AS attr_changes,
           -- the demographics the old PACS's database (manifest) or a map's issuer set differently now
           CASE WHEN t.h IS NOT NULL THEN concat_ws(', ',
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
    FROM flag fl
    JOIN (SELECT transfer_id, sent_header AS h FROM transfers) t ON t.transfer_id = fl.store_id
    LEFT JOIN (SELECT path, corrected, header AS c FROM outgoing_of(false) WHERE path IN (SELECT path FROM flag)) o
           ON o.path = fl.path
    LEFT JOIN ac ON ac.from_xxh3 = fl.source_xxh3 AND ac.to_xxh3 = fl.dataset_xxh3
),
proof AS (  -- the latest retrieve-back after the latest store
    SELECT v.k, v.outcome, v.detail
    FROM (SELECT instance_key(sop_instance_uid) AS k, * FROM verifications
          WHERE target = tgt AND mode = 'retrieve' AND outcome IN ('verified', 'mismatch', 'missing_on_target')
            AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys)) AND in_slice(sop_hash)) v
    JOIN st ON st.k = v.k
    WHERE v.verified_at >= st.stored_at
    QUALIFY row_number() OVER (PARTITION BY v.k ORDER BY v.verified_at DESC, v.verification_id DESC) = 1
),
ev AS (   -- the latest evidence per instance and mode, since the latest store (final_states, 0017)
    SELECT v.k, v.mode, v.outcome, v.verified_at, v.detail,
           CASE v.mode WHEN 'retrieve' THEN 3 WHEN 'commit' THEN 2 ELSE 1 END AS strength
    FROM (SELECT instance_key(sop_instance_uid) AS k, * FROM verification_evidence
          WHERE target = tgt AND outcome IN ('verified', 'missing_on_target', 'mismatch')
            AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys)) AND in_slice(sop_hash)) v
    JOIN st ON st.k = v.k
    WHERE v.verified_at >= st.stored_at
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
    WHERE target = tgt AND outcome NOT IN ('verified', 'missing_on_target', 'mismatch') AND (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys)) AND in_slice(sop_hash)
    QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY verified_at DESC, verification_id DESC) = 1
),
j AS (
    SELECT p.k, p.sop_instance_uid, p.disposition, p.study_instance_uid, p.patient_id, p.decided, p.why, p.size,
           st.k IS NOT NULL AS stored, st.stored_at, st.is_update, st.with_warning, coalesce(fa.gone, false) AS gone,
           CASE WHEN fa.gone THEN fa.last_scanned END AS missing_since,
           fa.skipped, lf.why AS last_failed,
           NOT coalesce(fa.same, false) AND cu.source_xxh3 IS DISTINCT FROM cu.dataset_xxh3 AS bytes_changed,
           cu.sent_patient_id IS DISTINCT FROM cu.patient_id_out AS id_changed, cu.demo_differs,
           d.demo_changes, d.header_changes, d.attr_changes, d.corrected,
           cu.sent_patient_id, cu.patient_id_out,
           pr.outcome AS proof, pr.detail AS proof_detail,
           b.outcome AS best_outcome,
           b.mode || ': ' || b.outcome || coalesce(' (' || b.detail || ')', '')
               || ' at ' || strftime(b.verified_at, '%Y-%m-%d %H:%M:%S') AS best_said,
           c.said AS contra_said, t.said AS tried_said
    FROM (SELECT instance_key(sop_instance_uid) AS k, sop_instance_uid, disposition, study_instance_uid, patient_id,
                 decided, why, size FROM plan
          WHERE (NOT keyed OR sop_instance_uid IN (SELECT sop_instance_uid FROM status_keys))) p  -- the view is sliced
    LEFT JOIN st ON st.k = p.k
    LEFT JOIN fa ON fa.k = p.k
    LEFT JOIN lf ON lf.k = p.k
    LEFT JOIN cu ON cu.k = p.k
    LEFT JOIN det d ON d.k = p.k
    LEFT JOIN proof pr ON pr.k = p.k
    LEFT JOIN best b ON b.k = p.k
    LEFT JOIN contra c ON c.k = p.k
    LEFT JOIN tried t ON t.k = p.k
)
SELECT
    sop_instance_uid, stored, stored_at, is_update, with_warning, missing_since,
    CASE
        WHEN NOT stored THEN NULL
        WHEN gone THEN 'deleted_in_source'
        WHEN disposition <> 'send' THEN 'current'
        WHEN bytes_changed OR id_changed OR demo_differs THEN 'changed'
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
        WHEN bytes_changed OR id_changed OR demo_differs THEN 'changed since stored: '
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
    k, disposition, study_instance_uid, patient_id, decided, why, size, gone, skipped, last_failed,
    best_outcome, best_said, contra_said, tried_said
FROM j;

