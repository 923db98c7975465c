-- UIDs breaking DICOM's rules: over 64 characters, not digits and dots, empty component, leading zero
WITH u AS (
    UNPIVOT (
        SELECT path, sop_instance_uid AS sop, sop_instance_uid, sop_class_uid, study_instance_uid,
               series_instance_uid, transfer_syntax_uid,
               meta_sop_uid(meta_sop_instance_uid, sop_instance_uid) AS meta_sop_instance_uid  -- as read (0030)
        FROM files WHERE status IN ('ok', 'suspect', 'corrupt')
    )
    ON sop_instance_uid, sop_class_uid, study_instance_uid, series_instance_uid, transfer_syntax_uid, meta_sop_instance_uid
    INTO NAME attr VALUE uid
)
SELECT 'warning' AS severity, path, any_value(sop) AS sop_instance_uid, min(uid) AS group_key,
       string_agg(attr || ' ' || '"' || uid || '"'
           || CASE WHEN length(uid) > 64 THEN ' is ' || length(uid) || ' characters'
                   WHEN NOT regexp_full_match(uid, '[0-9.]*') THEN ' has characters other than digits and dots'
                   WHEN uid LIKE '%..%' OR uid LIKE '.%' OR uid LIKE '%.' THEN ' has an empty component'
                   ELSE ' has a component with a leading zero' END, '; ' ORDER BY attr) AS detail,
       NULL::BOOLEAN AS recoverable
FROM u
WHERE NOT uid_valid(uid)
GROUP BY path
