-- Open the bookkeeping row of a scan run; finished stays NULL until it completes.
INSERT INTO scans (scan_id, root, volume, started, rehash, version)
SELECT coalesce(max(scan_id), 0) + 1, $root, $volume, now()::TIMESTAMP, $rehash, $version FROM scans
RETURNING scan_id;
