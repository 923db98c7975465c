-- The row ids of the files a scan did not find under its root (filled by ops/scan/gone_add).
CREATE OR REPLACE TEMP TABLE scan_gone (rid BIGINT);
