-- How many files are indexed under a scan root (the root itself if a file, or a path below it),
-- and the end of files' row ids: ops/scan/known_files reads them one stretch of row ids at a time.
-- $inside and $above: the recorded roots as ops/scan/known_roots places them.
SELECT count(*) FILTER (WHERE list_contains($inside::VARCHAR[], root)
                           OR (list_contains($above::VARCHAR[], root) AND (path = $root OR starts_with(path, $prefix)))),
       coalesce(max(rowid) + 1, 0)
FROM files;
