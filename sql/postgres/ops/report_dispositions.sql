-- The whole migration's plan: instances per disposition per host, and over all hosts (host NULL, each
-- SOPInstanceUID once, by its best disposition: send wins).
SELECT h.name AS host, p.disposition, count(*) AS instances, coalesce(sum(p.size), 0) AS bytes
FROM plan p JOIN hosts h USING (host_id) GROUP BY 1, 2
UNION ALL
SELECT NULL, disposition, count(*), coalesce(sum(size), 0) FROM (
    SELECT DISTINCT ON (sop_instance_uid) sop_instance_uid, disposition, size FROM plan
    ORDER BY sop_instance_uid, disposition = 'send' DESC, disposition
) one GROUP BY 2
ORDER BY 1 NULLS LAST, 3 DESC;
