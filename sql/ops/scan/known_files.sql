-- Files already indexed under a scan root: what an incremental rescan compares against.
SELECT path, size, mtime_ns, status
FROM files
WHERE path = $root OR starts_with(path, $prefix);
