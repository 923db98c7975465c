-- Files new to the index in scan $scan_id holding an instance already stored on a target with
-- other content (a corrected copy written to a new path, the old one gone or not): the sent
-- content's digest and the new file's, for each pair not compared yet. The comparison of a path
-- rescanned in place is made as the rows are written (attr_earlier); this covers the rest.
WITH fresh AS (
    SELECT path, sop_instance_uid, dataset_xxh3
    FROM files
    WHERE scan_id = $scan_id AND first_seen = scanned_at AND status IN ('ok', 'suspect')
      AND sop_instance_uid IS NOT NULL AND dataset_xxh3 IS NOT NULL
),
sent AS (
    SELECT DISTINCT sop_instance_uid, source_xxh3
    FROM transfers
    WHERE outcome IN ('stored', 'warning') AND source_xxh3 IS NOT NULL
      AND sop_instance_uid IN (SELECT sop_instance_uid FROM fresh)
),
pairs AS (
    SELECT DISTINCT s.source_xxh3 AS from_xxh3, fr.dataset_xxh3 AS to_xxh3, fr.path
    FROM fresh fr JOIN sent s USING (sop_instance_uid)
    WHERE s.source_xxh3 <> fr.dataset_xxh3
      AND NOT EXISTS (SELECT 1 FROM attr_changes c WHERE c.from_xxh3 = s.source_xxh3 AND c.to_xxh3 = fr.dataset_xxh3)
),
earlier AS (
    SELECT dataset_xxh3, any_value(attr_digest) AS attr_digest
    FROM (SELECT dataset_xxh3, attr_digest FROM file_digests WHERE dataset_xxh3 IN (SELECT from_xxh3 FROM pairs)
          UNION ALL
          SELECT dataset_xxh3, attr_digest FROM attr_versions WHERE dataset_xxh3 IN (SELECT from_xxh3 FROM pairs))
    GROUP BY 1
)
SELECT p.from_xxh3, p.to_xxh3, p.path, e.attr_digest AS from_digest, n.attr_digest AS to_digest
FROM pairs p
JOIN earlier e ON e.dataset_xxh3 = p.from_xxh3
JOIN file_digests n ON n.path = p.path
QUALIFY row_number() OVER (PARTITION BY p.from_xxh3, p.to_xxh3 ORDER BY p.path) = 1;
