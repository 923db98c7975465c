-- The host's plan was published (books publish): when, how many instances, the digest of what was published.
UPDATE hosts SET plan_published = now(), plan_instances = $instances, plan_digest = $digest, last_seen = now()
WHERE host_id = $host_id;
