-- plan_auto's definition as DuckDB records it (every migration's columns and constraints): a full
-- check creates its new plan table from it (plan_rebuild_begin).
SELECT sql FROM duckdb_tables()
WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'plan_auto';
