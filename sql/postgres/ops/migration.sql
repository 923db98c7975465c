-- The migration these books are for.
SELECT migration_id::text, name, created FROM migration;
