-- The schema versions applied to the index (pacscopy.index.applied_versions).
SELECT version FROM schema_migrations;
