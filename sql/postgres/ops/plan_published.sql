-- The host's plan was published (books publish).
UPDATE hosts SET plan_published = now(), plan_instances = $instances, last_seen = now() WHERE host_id = $host_id;
