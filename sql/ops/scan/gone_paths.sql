-- The paths now at the row ids of the files a scan did not find (scan_gone): a row id that holds
-- another path, or none, is a file whose row a checkpoint moved (pacscopy.scan.known.Gone).
SELECT rowid AS rid, path FROM files WHERE rowid IN (SELECT rid FROM scan_gone);
