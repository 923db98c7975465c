-- Locations (volumes, tapes, platters) the old PACS's database recorded, with how many of their instances still have no scanned file: restore these next
-- (an anti-join on the 128-bit key manifest load stores, as manifest_without_file: no hash table of UID strings)
SELECT coalesce(m.location, '(not recorded)') AS location,
       count(*) FILTER (WHERE d.sop_instance_uid IS NULL) AS without_file,
       count(*) FILTER (WHERE d.sop_instance_uid IS NOT NULL) AS decided,
       count(*) FILTER (WHERE m.state = 'offline') AS offline,
       min(m.sop_instance_uid) AS example
FROM (SELECT m.sop_instance_uid, m.location, m.state
      FROM manifest m
      ANTI JOIN (SELECT manifest_sop_key(sop_instance_uid) AS k FROM files WHERE status IN ('ok', 'suspect', 'corrupt')) f
             ON f.k = m.sop_key
      WHERE m.state IS DISTINCT FROM 'deleted') m
LEFT JOIN decisions d USING (sop_instance_uid)
GROUP BY 1
ORDER BY without_file DESC, location
