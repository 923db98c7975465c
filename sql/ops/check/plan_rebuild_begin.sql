-- A full check's new plan goes into a new, empty plan_auto (created from plan_auto_ddl once the old
-- table is set aside under another name; plan_rebuild_end drops it once build_plan has filled the
-- new one and status's kept figures have moved by the rows that differ (sql/ops/status/replanned.sql).
-- At 50 M instances deleting every row of plan_auto and inserting the new ones in one
-- transaction ran DuckDB's 1 GB out of memory: each deleted row's version is held in memory until
-- the commit, a dropped table's are not. The plan view and the books read plan_auto by name.
ALTER TABLE plan_auto RENAME TO plan_auto_replaced;
