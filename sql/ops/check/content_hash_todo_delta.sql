-- content_hash_todo for an incremental check: only the duplicate groups of the SOPInstanceUIDs
-- a changed row had or has (temp table check_keys, ops/check/delta_keys). Their rows are found by
-- their key (schema 0031: a pass over files' 8-byte sop_hash, then the few rows it selects), not by
-- a semi join on the ~55-byte UID that reads every file's columns (94 s at 50 M files).
WITH k AS (
    SELECT k AS sop_instance_uid, sop_hash_of(k) AS sop_hash FROM check_keys WHERE dim = 'sop_instance_uid'
),
g AS MATERIALIZED (  -- the sound rows of the changed UIDs
    SELECT rowid AS rid, sop_instance_uid, dataset_xxh3 FROM files
    WHERE rowid IN (SELECT rowid FROM files WHERE sop_hash IN (SELECT sop_hash FROM k))
      AND status = 'ok' AND sop_instance_uid IN (SELECT sop_instance_uid FROM k)
),
multi AS (  -- more than one content (count DISTINCT > 1)
    SELECT sop_instance_uid FROM g GROUP BY 1 HAVING min(dataset_xxh3) <> max(dataset_xxh3)
)
SELECT f.path, file_path_bytes(f.path, f.path_bytes) AS path_bytes, f.xxh3
FROM files f
WHERE f.rowid IN (SELECT rid FROM g WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM multi))
  AND NOT EXISTS (SELECT 1 FROM content_hashes h WHERE h.path = f.path AND h.xxh3 = f.xxh3)
ORDER BY f.path;
