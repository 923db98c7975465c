-- Sound files whose SOPInstanceUID has copies with different dataset bytes and no cached content hash.
-- Narrow first: the instances with more than one sound file, by the instance's stored 64-bit key
-- (schema 0031: sop_hash, an integer aggregate over every file that hashes no UID; a collision only
-- adds a candidate). Then the rows of those keys by row id (a pass over sop_hash, then the few rows
-- it selects, as content_hash_todo_delta), and of those the exact UIDs with more than one content
-- (min <> max: what count(DISTINCT ...) > 1 says, without a distinct aggregate's memory).
-- At 50 M files the one-pass form ran out of the default 1 GB (count DISTINCT per UID); narrowed
-- by a hash of the UID but selecting by semi joins on UID and key, which read every file's UID,
-- path and hashes, it took 68-80 s; by row id 16 s (BENCHMARKS.md, "The first count ... stop 25").
WITH copies AS MATERIALIZED (
    SELECT sop_hash AS h FROM files
    WHERE status = 'ok' AND sop_instance_uid IS NOT NULL
    GROUP BY 1 HAVING count(*) > 1
),
g AS MATERIALIZED (  -- the sound rows of those keys
    SELECT rowid AS rid, sop_instance_uid, dataset_xxh3 FROM files
    WHERE rowid IN (SELECT rowid FROM files WHERE sop_hash IN (SELECT h FROM copies))
      AND status = 'ok' AND sop_instance_uid IS NOT NULL
),
multi AS (  -- more than one content
    SELECT sop_instance_uid FROM g GROUP BY 1 HAVING min(dataset_xxh3) <> max(dataset_xxh3)
)
SELECT f.path, file_path_bytes(f.path, f.path_bytes) AS path_bytes, f.xxh3
FROM files f
WHERE f.rowid IN (SELECT rid FROM g WHERE sop_instance_uid IN (SELECT sop_instance_uid FROM multi))
  AND NOT EXISTS (SELECT 1 FROM content_hashes h WHERE h.path = f.path AND h.xxh3 = f.xxh3)
ORDER BY f.path;
