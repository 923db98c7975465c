-- Record the link to the shared books (never the password).
INSERT INTO books_link (migration_id, migration_name, books_url, host_name, host_id)
VALUES ($migration_id, $migration_name, $books_url, $host_name, $host_id);
