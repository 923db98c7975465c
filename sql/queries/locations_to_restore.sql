-- Locations (volumes, tapes, platters) the old PACS's database recorded, with how many of their instances still have no scanned file: restore these next
SELECT coalesce(m.location, '(not recorded)') AS location,
       count(*) FILTER (WHERE d.sop_instance_uid IS NULL) AS without_file,
       count(*) FILTER (WHERE d.sop_instance_uid IS NOT NULL) AS decided,
       count(*) FILTER (WHERE m.state = 'offline') AS offline,
       min(m.sop_instance_uid) AS example
FROM manifest m
LEFT JOIN decisions d USING (sop_instance_uid)
WHERE m.state IS DISTINCT FROM 'deleted'
  AND NOT EXISTS (SELECT 1 FROM files f
                  WHERE f.sop_instance_uid = m.sop_instance_uid AND f.status IN ('ok', 'suspect', 'corrupt'))
GROUP BY 1
ORDER BY without_file DESC, location
