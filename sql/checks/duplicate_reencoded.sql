-- One SOPInstanceUID, the same content once decoded, stored in different encodings (syntax, VR, endianness, meta)
WITH c AS (
    SELECT f.path, f.sop_instance_uid, f.dataset_xxh3, f.transfer_syntax_uid, f.has_meta,
           h.content_hash, h.pixel_decoded, h.note
    FROM files f JOIN content_hashes h ON h.path = f.path AND h.xxh3 = f.xxh3
    WHERE f.status = 'ok' AND h.content_hash IS NOT NULL
)
SELECT
    'info' AS severity,
    path,
    sop_instance_uid,
    sop_instance_uid AS group_key,
    'same content in ' || count(DISTINCT dataset_xxh3) OVER (PARTITION BY sop_instance_uid, content_hash)
        || ' encodings; this copy: ' || transfer_syntax_uid || CASE WHEN has_meta THEN '' ELSE ' without file meta' END
        || CASE WHEN pixel_decoded THEN '; pixels compared decoded' ELSE '; pixels compared encoded: ' || coalesce(note, 'no decoder') END
        AS detail,
    NULL::BOOLEAN AS recoverable
FROM c
QUALIFY count(DISTINCT dataset_xxh3) OVER (PARTITION BY sop_instance_uid, content_hash) > 1
