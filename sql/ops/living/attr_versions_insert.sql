-- Keep the content a rescan replaces (each path and content once).
INSERT INTO attr_versions (path, dataset_xxh3, attr_digest, replaced_at, scan_id)
SELECT n.path, n.dataset_xxh3, n.attr_digest, now()::TIMESTAMP, $scan_id
FROM (SELECT unnest($paths) AS path, unnest($hashes) AS dataset_xxh3, unnest($digests) AS attr_digest) n
WHERE NOT EXISTS (SELECT 1 FROM attr_versions v WHERE v.path = n.path AND v.dataset_xxh3 = n.dataset_xxh3)
QUALIFY row_number() OVER (PARTITION BY n.path, n.dataset_xxh3) = 1;
