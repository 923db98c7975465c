-- The old PACS's database marks the instance deleted; a file still holds it
SELECT 'warning' AS severity,
       f.path,
       f.sop_instance_uid,
       m.location AS group_key,
       'deleted in the old PACS''s database (location ' || coalesce(m.location, 'not recorded')
       || '); the file is still here' AS detail,
       NULL::BOOLEAN AS recoverable
FROM files f
JOIN manifest m USING (sop_instance_uid)
WHERE m.state = 'deleted'
  AND f.status IN ('ok', 'suspect', 'corrupt')
