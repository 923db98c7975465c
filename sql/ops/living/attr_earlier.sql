-- Every content the paths $paths had that has a digest: the row a rescan is about to replace
-- (is_current) and the versions kept from earlier rescans.
SELECT path, dataset_xxh3, attr_digest, true AS is_current
FROM files
WHERE path IN (SELECT unnest($paths)) AND attr_digest IS NOT NULL AND dataset_xxh3 IS NOT NULL
UNION ALL
SELECT path, dataset_xxh3, attr_digest, false AS is_current
FROM attr_versions
WHERE path IN (SELECT unnest($paths));
