-- Record which attributes differ between two contents (each pair of dataset hashes once).
INSERT INTO attr_changes (from_xxh3, to_xxh3, changed, path, recorded_at, scan_id)
SELECT n.from_xxh3, n.to_xxh3, n.changed, n.path, now()::TIMESTAMP, $scan_id
FROM (SELECT unnest($from) AS from_xxh3, unnest($to) AS to_xxh3, unnest($changed) AS changed,
             unnest($paths) AS path) n
WHERE NOT EXISTS (SELECT 1 FROM attr_changes c WHERE c.from_xxh3 = n.from_xxh3 AND c.to_xxh3 = n.to_xxh3)
QUALIFY row_number() OVER (PARTITION BY n.from_xxh3, n.to_xxh3) = 1;
