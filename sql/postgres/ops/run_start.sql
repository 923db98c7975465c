-- A host's send run begins (its local send_runs.run_id).
INSERT INTO runs (host_id, run_id, target, shard) VALUES ($host_id, $run_id, $target, $shard)
ON CONFLICT (host_id, run_id) DO UPDATE SET target = excluded.target, started = now(), shard = excluded.shard,
    finished = NULL, outcome = NULL;
