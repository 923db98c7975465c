-- Per host: its plan, what it stored on $target, whether it sends now, when it was last heard of.
SELECT h.name, h.plan_instances, h.plan_published, h.last_seen,
       (SELECT count(DISTINCT sop_instance_uid) FROM transfers t
         WHERE t.host_id = h.host_id AND t.target = $target AND t.outcome IN ('stored', 'warning')) AS stored,
       (SELECT count(*) FROM claims c WHERE c.host_id = h.host_id AND c.target = $target
                                        AND c.state = 'sending') AS sending,
       (SELECT max(t.finished) FROM transfers t WHERE t.host_id = h.host_id AND t.target = $target) AS last_transfer,
       (SELECT s.k || '/' || s.n FROM shares s WHERE s.host_id = h.host_id AND s.target = $target) AS share,
       EXISTS (SELECT 1 FROM runs r WHERE r.host_id = h.host_id AND r.target = $target
                                      AND r.finished IS NULL) AS running
FROM hosts h ORDER BY h.name;
