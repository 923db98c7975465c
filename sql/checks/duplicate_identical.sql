-- One SOPInstanceUID in several files with identical dataset bytes (the file meta may differ)
-- Narrow first (issue 12): the pairs of instance key (sop_hash, schema 0031) and a hash of the
-- dataset hash seen in more than one file, by an aggregate over 16-byte keys; then the exact count
-- by SOPInstanceUID and dataset hash over those files only. At 50 M files the window over every
-- file's UID, hash and path ran out of the default 1 GB (BENCHMARKS.md, "A writer's batch by row-id
-- runs, and the first count"). A pair that two UIDs or two hashes share only adds files to count.
WITH twice AS (
    SELECT sop_hash, hash(dataset_xxh3) AS dh
    FROM files
    WHERE status = 'ok' AND sop_instance_uid IS NOT NULL
    GROUP BY ALL
    HAVING count(*) > 1
)
SELECT
    'info' AS severity,
    path,
    sop_instance_uid,
    sop_instance_uid AS group_key,
    'same dataset bytes in ' || count(*) OVER (PARTITION BY sop_instance_uid, dataset_xxh3) || ' files' AS detail,
    NULL::BOOLEAN AS recoverable
FROM files f
SEMI JOIN twice t ON t.sop_hash = f.sop_hash AND t.dh = hash(f.dataset_xxh3)
WHERE status = 'ok' AND sop_instance_uid IS NOT NULL
QUALIFY count(*) OVER (PARTITION BY sop_instance_uid, dataset_xxh3) > 1
