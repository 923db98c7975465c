-- Files that changed since the scan and were therefore not sent (finding source_changed).
INSERT INTO findings (check_id, severity, path, sop_instance_uid, group_key, detail, recoverable)
SELECT 'source_changed', 'error', unnest($path), unnest($sop), NULL, unnest($detail) || ': rescan the volume', NULL;
