-- A host is alive: it started a run, published its plan, recorded transfers.
UPDATE hosts SET last_seen = now() WHERE host_id = $host_id;
