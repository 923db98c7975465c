-- The plan as build_plan.sql computed it before issue 12 (a window over whole rows), kept as the
-- reference the scalable formulation must equal (tests/test_scale.py); follow build_plan.sql's
-- semantic changes here (issue 14's 'deleted'). Not used by pacscopy.
-- Rebuild the automatic disposition of every SOPInstanceUID (decisions are applied by the plan view).
DELETE FROM plan_auto;
INSERT INTO plan_auto
WITH cand AS (
    SELECT f.*, h.content_hash
    FROM files f
    LEFT JOIN content_hashes h ON h.path = f.path AND h.xxh3 = f.xxh3
    WHERE f.sop_instance_uid IS NOT NULL AND f.status IN ('ok', 'suspect', 'corrupt', 'missing')
),
ranked AS (
    -- the copy to send: sound first, then a Part 10 file in explicit VR little endian,
    -- then any Part 10 file, then the most recent scan
    SELECT *, row_number() OVER (
        PARTITION BY sop_instance_uid
        ORDER BY status = 'ok' DESC, status = 'suspect' DESC, status = 'corrupt' DESC,
                 coalesce(has_meta AND transfer_syntax_uid = '1.2.840.10008.1.2.1', false) DESC,
                 coalesce(has_meta, false) DESC, scanned_at DESC, path
    ) AS rnk
    FROM cand
),
sop AS (
    SELECT sop_instance_uid,
           count(*) AS copies,
           count(*) FILTER (WHERE status = 'ok') AS sound,
           count(*) FILTER (WHERE status IN ('corrupt', 'suspect')) AS damaged,
           count(DISTINCT coalesce(content_hash, dataset_xxh3)) FILTER (WHERE status = 'ok') AS contents
    FROM cand
    GROUP BY 1
),
probed AS (
    -- blocked is judged against the most recently probed target (pacscopy probe)
    SELECT target FROM target_capabilities ORDER BY probed_at DESC, target LIMIT 1
),
caps AS (
    SELECT sop_class_uid, transfer_syntax_uid, accepted
    FROM target_capabilities WHERE target = (SELECT target FROM probed)
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
         WHEN s.sound = 0 AND r.status = 'missing' THEN 'deleted'  -- issue 14: deleted in the source
         WHEN s.sound = 0 THEN 'quarantine'
         WHEN s.contents > 1 THEN 'hold'
         WHEN h.checks IS NOT NULL THEN 'hold'
         WHEN len(mc.uids) > 0 AND mp.uid_mismatch <> 'send' THEN mp.uid_mismatch
         WHEN mp.loaded AND m.sop_instance_uid IS NULL AND mp.orphan <> 'send' THEN mp.orphan
         WHEN len(mc.demographics) > 0 AND mp.demographics = 'hold' THEN 'hold'
         WHEN b.refused THEN 'blocked'
         ELSE 'send' END AS disposition,
    CASE WHEN m.state = 'deleted' AND mp.deleted <> 'send'
              THEN 'deleted in the old PACS''s database (manifest_deleted; manifest policy deleted=' || mp.deleted || ')'
         WHEN s.sound = 0 AND r.status = 'missing' THEN 'deleted in the source: every copy vanished'
         WHEN s.sound = 0 THEN r.status || ': ' || coalesce(r.reason, '?') || ', no intact copy'
         WHEN s.contents > 1 THEN 'held: conflict, ' || s.sound || ' copies with different content (duplicate_conflict)'
         WHEN h.checks IS NOT NULL THEN 'held: ID conflict (' || h.checks || ')'
         WHEN len(mc.uids) > 0 AND mp.uid_mismatch <> 'send'
              THEN 'held: the old PACS''s database records another '
                   || array_to_string(list_transform(mc.uids, lambda x: x.attribute), ', ')
                   || ' (manifest_mismatch; manifest policy uid_mismatch=' || mp.uid_mismatch || ')'
         WHEN mp.loaded AND m.sop_instance_uid IS NULL AND mp.orphan <> 'send'
              THEN 'orphan: not in the old PACS''s database (file_without_manifest; manifest policy orphan='
                   || mp.orphan || ')'
         WHEN len(mc.demographics) > 0 AND mp.demographics = 'hold'
              THEN 'held: the old PACS''s database has other '
                   || array_to_string(list_transform(mc.demographics, lambda x: x.attribute), ', ')
                   || ' (manifest_mismatch; manifest policy demographics=hold)'
         WHEN b.refused THEN 'blocked: ' || (SELECT target FROM probed) || ' refuses '
              || coalesce(sc.name, r.sop_class_uid) || ' in ' || coalesce(r.transfer_syntax_uid, '?')
              || CASE WHEN b.transcode_to IS NOT NULL
                      THEN '; sendable ' || CASE WHEN list_contains(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1',
                                                                     '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99'],
                                                                    r.transfer_syntax_uid)
                                                 THEN 're-encoded in ' ELSE 'decompressed to ' END
                           || b.transcode_to || ' with send --transcode'
                      WHEN b.uncompressed_ok IS NOT NULL
                      THEN '; the target accepts the class uncompressed, but send --transcode cannot rewrite it here: '
                           || coalesce($no_decoder_why[list_position($no_decoder_ts, r.transfer_syntax_uid)],
                                       'pydicom cannot decode ' || coalesce(r.transfer_syntax_uid, '?'))
                      ELSE '' END
         ELSE 'send' || CASE WHEN s.sound > 1 THEN '; ' || (s.sound - 1) || ' duplicate cop'
                                 || CASE WHEN s.sound = 2 THEN 'y' ELSE 'ies' END || ' skipped' ELSE '' END
                     || CASE WHEN s.damaged > 0 THEN '; intact copy of ' || s.damaged || ' damaged file'
                                 || CASE WHEN s.damaged > 1 THEN 's' ELSE '' END ELSE '' END
                     || CASE WHEN len(mc.demographics) > 0 AND mp.demographics = 'rewrite'
                             THEN '; the old PACS''s database values of '
                                  || array_to_string(list_transform(mc.demographics, lambda x: x.attribute), ', ')
                                  || ' written on the way out' ELSE '' END
    END AS why,
    s.copies,
    s.sound,
    r.sop_class_uid,
    r.transfer_syntax_uid,
    r.study_instance_uid,
    r.patient_id,
    r.size,
    CASE WHEN b.refused THEN b.transcode_to END AS transcode_to,  -- only what the installed decoders can do
    sop_hash_of(r.sop_instance_uid) AS sop_hash  -- schema 0031
FROM ranked r
JOIN sop s USING (sop_instance_uid)
LEFT JOIN holds h USING (sop_instance_uid)
LEFT JOIN sop_classes sc ON sc.uid = r.sop_class_uid
LEFT JOIN (
    SELECT r2.sop_instance_uid,
           (SELECT count(*) FROM probed) > 0 AND ok.sop_class_uid IS NULL AS refused,
           CASE WHEN list_contains($transcodable, r2.transfer_syntax_uid) THEN tc.ts END AS transcode_to,
           tc.ts AS uncompressed_ok
    FROM ranked r2
    LEFT JOIN (SELECT sop_class_uid, transfer_syntax_uid FROM caps WHERE accepted) ok
           ON ok.sop_class_uid = r2.sop_class_uid AND ok.transfer_syntax_uid = r2.transfer_syntax_uid
    LEFT JOIN (SELECT sop_class_uid, arg_max(transfer_syntax_uid, transfer_syntax_uid = '1.2.840.10008.1.2.1') AS ts
               FROM caps WHERE accepted AND transfer_syntax_uid IN ('1.2.840.10008.1.2.1', '1.2.840.10008.1.2')
               GROUP BY 1) tc ON tc.sop_class_uid = r2.sop_class_uid
    WHERE r2.rnk = 1
) b USING (sop_instance_uid)
LEFT JOIN manifest m ON m.sop_instance_uid = r.sop_instance_uid
LEFT JOIN manifest_compare mc ON mc.path = r.path
CROSS JOIN mpol mp
WHERE r.rnk = 1;
