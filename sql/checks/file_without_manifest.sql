-- A file holds an instance the old PACS's database does not know (an orphan: often deleted there, or a copy left behind); only with a manifest loaded
-- (an anti-join on the 128-bit key manifest load stores, migration 0019: no hash table of UID strings)
SELECT 'warning' AS severity,
       f.path,
       f.sop_instance_uid,
       f.volume AS group_key,
       'not in the old PACS''s database (the manifest): deleted there, or a copy left behind' AS detail,
       NULL::BOOLEAN AS recoverable
FROM (SELECT path, sop_instance_uid, volume, manifest_sop_key(sop_instance_uid) AS k
      FROM files WHERE sop_instance_uid IS NOT NULL AND status IN ('ok', 'suspect', 'corrupt')) f
ANTI JOIN manifest m ON m.sop_key = f.k
WHERE EXISTS (SELECT 1 FROM manifest)
