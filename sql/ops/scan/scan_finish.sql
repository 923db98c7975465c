-- Close the bookkeeping row of a scan run with its counts.
UPDATE scans SET finished = now()::TIMESTAMP, files_new = $new, files_changed = $changed,
    files_unchanged = $unchanged, files_missing = $missing, bytes_read = $bytes_read
WHERE scan_id = $scan_id;
