-- The shared books this index is linked to (books join), if any.
SELECT migration_id, migration_name, books_url, host_name, host_id FROM books_link;
