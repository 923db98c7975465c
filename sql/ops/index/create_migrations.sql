-- Bookkeeping of applied schema migrations (sql/schema/NNNN_name.sql).
CREATE TABLE schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT now()::TIMESTAMP
);
