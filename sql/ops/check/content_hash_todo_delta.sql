-- content_hash_todo for an incremental check: only the duplicate groups of the SOPInstanceUIDs
-- a changed row had or has (temp table check_keys, ops/check/delta_keys).
SELECT f.path, file_path_bytes(f.path, f.path_bytes) AS path_bytes, f.xxh3
FROM files f
WHERE f.status = 'ok'
  AND f.sop_instance_uid IN (
      SELECT sop_instance_uid FROM files
      WHERE status = 'ok'
        AND sop_instance_uid IN (SELECT k FROM check_keys WHERE dim = 'sop_instance_uid')
      GROUP BY 1 HAVING min(dataset_xxh3) <> max(dataset_xxh3))  -- more than one content (count DISTINCT > 1)
  AND NOT EXISTS (SELECT 1 FROM content_hashes h WHERE h.path = f.path AND h.xxh3 = f.xxh3)
ORDER BY f.path;
