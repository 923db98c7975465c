-- The first of $sops (keep/remove decisions) that is not deleted in the source and stored on a target.
WITH asked AS (SELECT unnest($sops::VARCHAR[]) AS sop_instance_uid)
SELECT a.sop_instance_uid,
       CASE WHEN EXISTS (SELECT 1 FROM files f WHERE f.sop_instance_uid = a.sop_instance_uid AND f.status <> 'missing')
            THEN 'is not deleted in the source (a copy is still there)'
            ELSE 'was never stored on a target' END AS why
FROM asked a
WHERE EXISTS (SELECT 1 FROM files f WHERE f.sop_instance_uid = a.sop_instance_uid)
  AND (EXISTS (SELECT 1 FROM files f WHERE f.sop_instance_uid = a.sop_instance_uid AND f.status <> 'missing')
       OR NOT EXISTS (SELECT 1 FROM transfers t WHERE t.sop_instance_uid = a.sop_instance_uid
                                                 AND t.outcome IN ('stored', 'warning')))
ORDER BY a.sop_instance_uid
LIMIT 1;
