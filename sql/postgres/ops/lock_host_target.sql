-- Serialise one host's catch-up for one target until the transaction ends.
SELECT pg_advisory_xact_lock(hashtext($target), $host_id::integer);
