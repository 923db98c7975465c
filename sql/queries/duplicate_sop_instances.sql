-- SOPInstanceUIDs found in more than one file (same or different content)
SELECT sop_instance_uid, count(*) AS files, count(DISTINCT xxh3) AS distinct_contents,
       list(path ORDER BY path) AS paths
FROM files
WHERE sop_instance_uid IS NOT NULL AND status <> 'missing'
GROUP BY sop_instance_uid
HAVING count(*) > 1
ORDER BY files DESC, sop_instance_uid;
