-- Every content the paths $paths had that has a digest: the one a rescan is about to replace
-- (is_current) and the versions kept from earlier rescans.
SELECT path, dataset_xxh3, attr_digest, true AS is_current
FROM file_digests
WHERE path IN (SELECT unnest($paths))
UNION ALL
SELECT path, dataset_xxh3, attr_digest, false AS is_current
FROM attr_versions
WHERE path IN (SELECT unnest($paths));
