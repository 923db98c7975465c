-- The digests of a batch of scanned files (one list element per file).
INSERT INTO file_digests (path, dataset_xxh3, attr_digest)
SELECT unnest($paths), unnest($hashes), unnest($digests);
