-- Files that cannot be planned because no SOPInstanceUID could be read from them, by status and reason.
SELECT status, coalesce(reason, '') AS reason, count(*) AS files
FROM files
WHERE sop_instance_uid IS NULL AND status IN ('corrupt', 'suspect', 'unreadable')
GROUP BY ALL
ORDER BY files DESC;
