-- Serialise share changes for one target until the transaction ends (two hosts registering at once).
SELECT pg_advisory_xact_lock(7013002, hashtext($target));
