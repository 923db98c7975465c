-- Register (or meet again) a host by name; its index path as that host sees it.
INSERT INTO hosts (name, index_path) VALUES ($name, $index_path)
ON CONFLICT (name) DO UPDATE SET last_seen = now(), index_path = excluded.index_path
RETURNING host_id;
