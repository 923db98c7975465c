-- One SOPInstanceUID in several files with identical dataset bytes (the file meta may differ)
SELECT
    'info' AS severity,
    path,
    sop_instance_uid,
    sop_instance_uid AS group_key,
    'same dataset bytes in ' || count(*) OVER (PARTITION BY sop_instance_uid, dataset_xxh3) || ' files' AS detail,
    NULL::BOOLEAN AS recoverable
FROM files
WHERE status = 'ok' AND sop_instance_uid IS NOT NULL
QUALIFY count(*) OVER (PARTITION BY sop_instance_uid, dataset_xxh3) > 1
