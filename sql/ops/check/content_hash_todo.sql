-- Sound files whose SOPInstanceUID has copies with different dataset bytes and no cached content hash.
-- Narrow first: the instances with more than one sound file, by a 64-bit hash of the UID (an
-- integer aggregate over every file; a collision only adds a candidate), then the exact UIDs of
-- those alone, with more than one content (min <> max: what count(DISTINCT ...) > 1 says, without
-- a distinct aggregate's memory). At 50 M files the one-pass form ran out of the default 1 GB
-- (count DISTINCT per UID), and with min/max took 116 s of CPU against 27 s for this.
WITH copies AS MATERIALIZED (
    SELECT hash(sop_instance_uid) AS h FROM files
    WHERE status = 'ok' AND sop_instance_uid IS NOT NULL
    GROUP BY 1 HAVING count(*) > 1
),
multi AS (
    SELECT sop_instance_uid FROM files
    WHERE status = 'ok' AND sop_instance_uid IS NOT NULL AND hash(sop_instance_uid) IN (SELECT h FROM copies)
    GROUP BY 1 HAVING min(dataset_xxh3) <> max(dataset_xxh3)
)
SELECT f.path, file_path_bytes(f.path, f.path_bytes) AS path_bytes, f.xxh3
FROM files f
WHERE f.status = 'ok'
  AND f.sop_instance_uid IN (SELECT sop_instance_uid FROM multi)
  AND NOT EXISTS (SELECT 1 FROM content_hashes h WHERE h.path = f.path AND h.xxh3 = f.xxh3)
ORDER BY f.path;
