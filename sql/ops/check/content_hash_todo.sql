-- Sound files whose SOPInstanceUID has copies with different dataset bytes and no cached content hash.
SELECT f.path, f.path_bytes, f.xxh3
FROM files f
WHERE f.status = 'ok'
  AND f.sop_instance_uid IN (
      SELECT sop_instance_uid FROM files
      WHERE status = 'ok' AND sop_instance_uid IS NOT NULL
      GROUP BY 1 HAVING count(DISTINCT dataset_xxh3) > 1)
  AND NOT EXISTS (SELECT 1 FROM content_hashes h WHERE h.path = f.path AND h.xxh3 = f.xxh3)
ORDER BY f.path;
