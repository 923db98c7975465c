-- Scan runs: when, which root, what changed (finished is empty for a run that was killed)
SELECT scan_id, root, volume, started, finished, files_new, files_changed, files_unchanged,
       files_missing, round(bytes_read / 1e6, 1) AS megabytes_read
FROM scans
ORDER BY scan_id;
