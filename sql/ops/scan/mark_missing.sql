-- Files seen by an earlier scan that are gone now (row ids in scan_gone). Header values stay for the record.
UPDATE files
SET status = 'missing', reason = 'vanished', detail = 'not found by scan ' || $scan_id::VARCHAR,
    scanned_at = now()::TIMESTAMP, scan_id = $scan_id
WHERE rowid IN (SELECT rid FROM scan_gone) AND status <> 'missing';
