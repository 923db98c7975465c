-- This host is sending: a session-level shared advisory lock on (7013013, host id), held by the send's
-- claim connection until it ends. PostgreSQL releases it when the session ends, also when the host's
-- process is killed or its machine is lost (the connection closes): its claims then become free to take.
SELECT pg_advisory_lock_shared(7013013, $host_id::integer);
