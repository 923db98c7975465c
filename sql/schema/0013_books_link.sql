-- Several machines (issue 13): the shared books in PostgreSQL this index is linked to ('pacscopy books
-- join'). One row at most. The URL is kept without its password (give that in --books, $PGPASSWORD or
-- ~/.pgpass); a link to another migration's books is refused by comparing migration_id.
CREATE TABLE books_link (
    migration_id   VARCHAR NOT NULL,      -- the books' migration.migration_id (a UUID)
    migration_name VARCHAR NOT NULL,
    books_url      VARCHAR NOT NULL,      -- postgresql://USER@HOST:PORT/DB, never the password
    host_name      VARCHAR NOT NULL,      -- this host's name in the books (hosts.name)
    host_id        INTEGER NOT NULL,      -- hosts.host_id
    linked_at      TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP
);
