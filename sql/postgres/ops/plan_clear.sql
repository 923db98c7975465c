-- Drop a host's earlier plan before it publishes the new one (same transaction).
DELETE FROM plan WHERE host_id = $host_id;
