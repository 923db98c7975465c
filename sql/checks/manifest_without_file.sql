-- The old PACS's database knows the instance, no scanned file holds it (a broken link: lost, or on a volume not restored yet); group_key is the location
-- (an anti-join on the 128-bit key manifest load stores, migration 0019: no hash table of UID strings)
SELECT 'error' AS severity,
       coalesce(m.location, '(no location recorded)') AS path,
       m.sop_instance_uid,
       m.location AS group_key,
       'known to the old PACS''s database (' || coalesce(m.state, 'state not recorded') || ', location '
       || coalesce(m.location, 'not recorded') || '), no scanned file holds it: lost, or on a volume not restored yet ('
       || count(*) OVER (PARTITION BY m.location) || ' such instances on this location)' AS detail,
       NULL::BOOLEAN AS recoverable
FROM manifest m
ANTI JOIN (SELECT manifest_sop_key(sop_instance_uid) AS k FROM files WHERE status IN ('ok', 'suspect', 'corrupt')) f
       ON f.k = m.sop_key
WHERE m.state IS DISTINCT FROM 'deleted'
