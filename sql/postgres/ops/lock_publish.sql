-- Serialise one host's publishes until the transaction ends (a send republishing while 'books publish'
-- runs for the same host): the second one waits, then replaces the first one's plan whole.
SELECT pg_advisory_xact_lock(7013003, $host_id::integer);
