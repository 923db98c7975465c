-- Record a manifest load (inside the transaction that replaced the manifest's rows).
INSERT INTO manifest_loads (source, format, rows, columns)
SELECT $source, $format, count(*), $columns FROM manifest;
