-- Store a batch of canonical content hashes (one list element per file).
INSERT OR REPLACE INTO content_hashes (path, xxh3, content_hash, pixel_hash, pixel_decoded, note, element_hashes)
SELECT unnest($path), unnest($xxh3), unnest($content_hash), unnest($pixel_hash), unnest($pixel_decoded),
       unnest($note), map(unnest($keys), unnest($values));
