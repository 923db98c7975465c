-- Create the migration these books are for (books init): refused when one exists (the table holds one row).
INSERT INTO migration (migration_id, name) VALUES ($migration_id, $name)
ON CONFLICT DO NOTHING
RETURNING migration_id::text, name;
