-- A file holds an instance the old PACS's database does not know (an orphan: often deleted there, or a copy left behind); only with a manifest loaded
SELECT 'warning' AS severity,
       f.path,
       f.sop_instance_uid,
       f.volume AS group_key,
       'not in the old PACS''s database (the manifest): deleted there, or a copy left behind' AS detail,
       NULL::BOOLEAN AS recoverable
FROM files f
WHERE f.sop_instance_uid IS NOT NULL
  AND f.status IN ('ok', 'suspect', 'corrupt')
  AND EXISTS (SELECT 1 FROM manifest)
  AND NOT EXISTS (SELECT 1 FROM manifest m WHERE m.sop_instance_uid = f.sop_instance_uid)
