-- Register (or change) this host's share of a target: --shard K/N.
INSERT INTO shares (target, host_id, k, n) VALUES ($target, $host_id, $k, $n)
ON CONFLICT (target, host_id) DO UPDATE SET k = excluded.k, n = excluded.n, registered = now();
