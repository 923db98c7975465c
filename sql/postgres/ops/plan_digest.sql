-- The digest of the plan this host published last (NULL: published by a pacscopy that kept none).
SELECT plan_digest FROM hosts WHERE host_id = $host_id;
