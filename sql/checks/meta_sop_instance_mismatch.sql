-- The file meta's MediaStorageSOPInstanceUID differs from the dataset's SOPInstanceUID (or the dataset has none)
-- (meta_sop_uid: the value as read; files keeps it only where it differs, schema 0030)
SELECT 'warning' AS severity, path, sop_instance_uid, meta AS group_key,
       'file meta names ' || coalesce(meta, '(nothing)') || ', dataset has '
           || coalesce(sop_instance_uid, 'no SOPInstanceUID') AS detail,
       NULL::BOOLEAN AS recoverable
FROM (SELECT path, sop_instance_uid, meta_sop_uid(meta_sop_instance_uid, sop_instance_uid) AS meta
      FROM files
      WHERE has_meta
        -- only where the dataset was read: a file cut inside its meta has no dataset to disagree
        AND (status IN ('ok', 'suspect') OR (status = 'corrupt' AND (sop_instance_uid IS NOT NULL
                                                                     OR reason = 'missing_sop_instance_uid'))))
WHERE meta IS DISTINCT FROM sop_instance_uid
