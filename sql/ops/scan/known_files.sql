-- Files already indexed under a scan root, those with row ids in [$lo, $hi): what an incremental
-- rescan compares against (pacscopy/scan/known.py). code: 0 a status read again only if the file
-- changed, 1 skipped, 2 unreadable, 3 missing. $inside and $above: the recorded roots as
-- ops/scan/known_roots places them (a path is compared only for the files of a root above).
SELECT path, size, mtime_ns,
    CASE status WHEN 'skipped' THEN 1 WHEN 'unreadable' THEN 2 WHEN 'missing' THEN 3 ELSE 0 END AS code,
    rowid AS rid
FROM files
WHERE rowid >= $lo AND rowid < $hi
  AND (list_contains($inside::VARCHAR[], root)
       OR (list_contains($above::VARCHAR[], root) AND (path = $root OR starts_with(path, $prefix))));
