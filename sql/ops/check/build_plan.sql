-- Rebuild the automatic disposition of every SOPInstanceUID (decisions are applied by the plan view).
-- Shaped for hundreds of millions of files in a bounded memory (issue 15: 5 M files and manifest
-- rows checked in under a minute): the aggregation per SOPInstanceUID keeps only narrow values
-- (a row id, a 128-bit sort key, counts), the chosen copy's columns are joined back from files by
-- row id (8-byte keys, not paths) and the manifest by its 128-bit sop_key (not UID strings); the
-- wide strings are carried only from there on. DuckDB spills what it must.
-- It inserts into an empty plan_auto: a full check into a new one that replaces the old table
-- (plan_rebuild_*: at 50 M instances a DELETE of every row beside this INSERT ran DuckDB's 1 GB out of
-- memory), an incremental check after deleting its instances' rows (delta_replan).
INSERT INTO plan_auto
WITH cand AS (
    -- the copy to send: sound first, then a Part 10 file in explicit VR little endian, then any
    -- Part 10 file, then the most recent scan (plan_rank, one number), then the first path
    SELECT f.rowid AS rid, f.sop_instance_uid, f.status,
           plan_rank(f.status, f.has_meta, f.transfer_syntax_uid, f.scanned_at) AS rank
    FROM files f
    WHERE f.sop_instance_uid IS NOT NULL AND f.status IN ('ok', 'suspect', 'corrupt', 'missing')
),
sop1 AS (
    -- grouped on the UID (strings hash faster than they digest), which is not kept: the chosen
    -- copy's row id says everything else. An instance with one copy is done here; for those with
    -- more, ties on the rank (broken by path) and conflicts (contents) are settled in multi below.
    SELECT arg_min(rid, rank) AS rid,
           count(*) AS copies,
           count(*) FILTER (WHERE status = 'ok') AS sound,
           count(*) FILTER (WHERE status IN ('corrupt', 'suspect')) AS damaged
    FROM cand
    GROUP BY sop_instance_uid
),
multi_sops AS MATERIALIZED (
    SELECT f.sop_instance_uid, s.rid
    FROM (SELECT rid FROM sop1 WHERE copies > 1) s
    JOIN files f ON f.rowid = s.rid
),
multi AS (
    -- the instances with more than one copy, whole: the first path among the best-ranked copies,
    -- and more than one content among the sound copies (what count(DISTINCT ...) > 1 says, without
    -- a distinct aggregate's memory)
    SELECT any_value(m.rid) AS rid1,
           arg_min(f.rowid, {'r': plan_rank(f.status, f.has_meta, f.transfer_syntax_uid, f.scanned_at),
                             'p': f.path}) AS rid,
           coalesce(min(coalesce(h.content_hash, f.dataset_xxh3)) FILTER (WHERE f.status = 'ok')
                    <> max(coalesce(h.content_hash, f.dataset_xxh3)) FILTER (WHERE f.status = 'ok'), false)
               AS conflict
    FROM files f
    JOIN multi_sops m ON m.sop_instance_uid = f.sop_instance_uid
    LEFT JOIN content_hashes h ON h.path = f.path AND h.xxh3 = f.xxh3
    WHERE f.status IN ('ok', 'suspect', 'corrupt', 'missing')
    GROUP BY f.sop_instance_uid
),
sop AS (
    SELECT coalesce(x.rid, s.rid) AS rid, s.copies, s.sound, s.damaged, coalesce(x.conflict, false) AS conflict
    FROM sop1 s
    LEFT JOIN multi x ON x.rid1 = s.rid
),
probed AS (
    -- blocked is judged against the most recently probed target (pacscopy probe)
    SELECT target FROM target_capabilities ORDER BY probed_at DESC, target LIMIT 1
),
caps AS (
    SELECT sop_class_uid, transfer_syntax_uid, accepted
    FROM target_capabilities WHERE target = (SELECT target FROM probed)
),
ranked AS (
    -- the chosen copy's columns, joined back by its row id, and whether the probed target takes it
    SELECT f.sop_instance_uid, manifest_sop_key(f.sop_instance_uid) AS sop_key, s.copies, s.sound, s.damaged, s.conflict,
           f.path, f.status, f.reason, f.sop_class_uid, f.transfer_syntax_uid,
           f.study_instance_uid, f.patient_id, f.size, f.sop_hash,
           (SELECT count(*) FROM probed) > 0 AND ok.sop_class_uid IS NULL AS refused,
           CASE WHEN list_contains($transcodable, f.transfer_syntax_uid) THEN tc.ts END AS transcode_to,
           tc.ts AS uncompressed_ok
    FROM sop s
    JOIN files f ON f.rowid = s.rid
    LEFT JOIN (SELECT sop_class_uid, transfer_syntax_uid FROM caps WHERE accepted) ok
           ON ok.sop_class_uid = f.sop_class_uid AND ok.transfer_syntax_uid = f.transfer_syntax_uid
    LEFT JOIN (SELECT sop_class_uid, arg_max(transfer_syntax_uid, transfer_syntax_uid = '1.2.840.10008.1.2.1') AS ts
               FROM caps WHERE accepted AND transfer_syntax_uid IN ('1.2.840.10008.1.2.1', '1.2.840.10008.1.2')
               GROUP BY 1) tc ON tc.sop_class_uid = f.sop_class_uid
),
holds AS (
    SELECT sop_instance_uid, string_agg(DISTINCT check_id, ', ' ORDER BY check_id) AS checks
    FROM findings
    WHERE sop_instance_uid IS NOT NULL
      AND (check_id IN ('study_uid_multiple_patients', 'series_uid_multiple_studies',
                        'accession_multiple_patients', 'patient_id_inconsistent_demographics')
           OR (check_id = 'missing_required_attribute' AND group_key LIKE '%PatientID%'))
    GROUP BY 1
),
mpol AS (
    -- the manifest policy (pacscopy check --manifest-policy), defaults where no rule is recorded
    SELECT coalesce(any_value(action) FILTER (WHERE rule = 'deleted'), 'skip') AS deleted,
           coalesce(any_value(action) FILTER (WHERE rule = 'orphan'), 'hold') AS orphan,
           coalesce(any_value(action) FILTER (WHERE rule = 'demographics'), 'rewrite') AS demographics,
           coalesce(any_value(action) FILTER (WHERE rule = 'uid_mismatch'), 'hold') AS uid_mismatch,
           EXISTS (SELECT 1 FROM manifest) AS loaded
    FROM manifest_policy
)
SELECT
    r.sop_instance_uid,
    r.path,
    CASE WHEN m.state = 'deleted' AND mp.deleted <> 'send' THEN mp.deleted
         WHEN r.sound = 0 AND r.status = 'missing' THEN 'deleted'  -- issue 14: deleted in the source
         WHEN r.sound = 0 THEN 'quarantine'
         WHEN r.conflict THEN 'hold'
         WHEN h.checks IS NOT NULL THEN 'hold'
         WHEN len(mc.uids) > 0 AND mp.uid_mismatch <> 'send' THEN mp.uid_mismatch
         WHEN mp.loaded AND m.sop_key IS NULL AND mp.orphan <> 'send' THEN mp.orphan
         WHEN len(mc.demographics) > 0 AND mp.demographics = 'hold' THEN 'hold'
         WHEN r.refused THEN 'blocked'
         ELSE 'send' END AS disposition,
    CASE WHEN m.state = 'deleted' AND mp.deleted <> 'send'
              THEN 'deleted in the old PACS''s database (manifest_deleted; manifest policy deleted=' || mp.deleted || ')'
         WHEN r.sound = 0 AND r.status = 'missing' THEN 'deleted in the source: every copy vanished'
         WHEN r.sound = 0 THEN r.status || ': ' || coalesce(r.reason, '?') || ', no intact copy'
         WHEN r.conflict THEN 'held: conflict, ' || r.sound || ' copies with different content (duplicate_conflict)'
         WHEN h.checks IS NOT NULL THEN 'held: ID conflict (' || h.checks || ')'
         WHEN len(mc.uids) > 0 AND mp.uid_mismatch <> 'send'
              THEN 'held: the old PACS''s database records another '
                   || array_to_string(list_transform(mc.uids, lambda x: x.attribute), ', ')
                   || ' (manifest_mismatch; manifest policy uid_mismatch=' || mp.uid_mismatch || ')'
         WHEN mp.loaded AND m.sop_key IS NULL AND mp.orphan <> 'send'
              THEN 'orphan: not in the old PACS''s database (file_without_manifest; manifest policy orphan='
                   || mp.orphan || ')'
         WHEN len(mc.demographics) > 0 AND mp.demographics = 'hold'
              THEN 'held: the old PACS''s database has other '
                   || array_to_string(list_transform(mc.demographics, lambda x: x.attribute), ', ')
                   || ' (manifest_mismatch; manifest policy demographics=hold)'
         WHEN r.refused THEN 'blocked: ' || (SELECT target FROM probed) || ' refuses '
              || coalesce(sc.name, r.sop_class_uid) || ' in ' || coalesce(r.transfer_syntax_uid, '?')
              || CASE WHEN r.transcode_to IS NOT NULL
                      THEN '; sendable ' || CASE WHEN list_contains(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1',
                                                                     '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99'],
                                                                    r.transfer_syntax_uid)
                                                 THEN 're-encoded in ' ELSE 'decompressed to ' END
                           || r.transcode_to || ' with send --transcode'
                      WHEN r.uncompressed_ok IS NOT NULL
                      THEN '; the target accepts the class uncompressed, but send --transcode cannot rewrite it here: '
                           || coalesce($no_decoder_why[list_position($no_decoder_ts, r.transfer_syntax_uid)],
                                       'pydicom cannot decode ' || coalesce(r.transfer_syntax_uid, '?'))
                      ELSE '' END
         ELSE 'send' || CASE WHEN r.sound > 1 THEN '; ' || (r.sound - 1) || ' duplicate cop'
                                 || CASE WHEN r.sound = 2 THEN 'y' ELSE 'ies' END || ' skipped' ELSE '' END
                     || CASE WHEN r.damaged > 0 THEN '; intact copy of ' || r.damaged || ' damaged file'
                                 || CASE WHEN r.damaged > 1 THEN 's' ELSE '' END ELSE '' END
                     || CASE WHEN len(mc.demographics) > 0 AND mp.demographics = 'rewrite'
                             THEN '; the old PACS''s database values of '
                                  || array_to_string(list_transform(mc.demographics, lambda x: x.attribute), ', ')
                                  || ' written on the way out' ELSE '' END
    END AS why,
    r.copies,
    r.sound,
    r.sop_class_uid,
    r.transfer_syntax_uid,
    r.study_instance_uid,
    r.patient_id,
    r.size,
    CASE WHEN r.refused THEN r.transcode_to END AS transcode_to,  -- only what the installed decoders can do
    r.sop_hash  -- schema 0031: the file's, sop_hash_of(sop_instance_uid)
FROM ranked r
LEFT JOIN holds h USING (sop_instance_uid)
LEFT JOIN sop_classes sc ON sc.uid = r.sop_class_uid
LEFT JOIN (SELECT sop_key, state FROM manifest) m ON m.sop_key = r.sop_key
LEFT JOIN manifest_compare mc ON mc.path = r.path
CROSS JOIN mpol mp;
