-- The scan roots recorded in files, placed against the root being scanned ($root; $prefix is $root/):
-- inside: the root itself or a root below it (every file recorded under one of them is under $root:
-- a scan records each file it walks under the root it walked, its path that root's or below it);
-- above: a root that $root lies under (of its files, those whose path is under $root). A root beside
-- it holds none of $root's files. One pass over files' root column (a few distinct values,
-- dictionary-compressed) lets ops/scan/known_count and known_files compare paths only for the rows
-- of a root above, instead of every file's path (issue 12: at 50 M files two such passes per root
-- took ~15 s).
SELECT coalesce(list(root) FILTER (WHERE root = $root OR starts_with(root, $prefix)), []::VARCHAR[]) AS inside,
       coalesce(list(root) FILTER (WHERE root <> $root AND NOT starts_with(root, $prefix)
                                   AND starts_with($prefix, rtrim(root, '/') || '/')), []::VARCHAR[]) AS above
FROM (SELECT DISTINCT root FROM files);
