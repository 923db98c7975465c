-- Files that are damaged (corrupt, suspect, unreadable), with reason and detail
SELECT path, volume, status, reason, detail, sop_instance_uid, size
FROM files
WHERE status IN ('corrupt', 'suspect', 'unreadable')
ORDER BY volume, path;
