-- Record (or replace) the staged decisions, all in one statement.
INSERT OR REPLACE INTO decisions (sop_instance_uid, action, path, note, decided_at, decided_by)
SELECT sop_instance_uid, action, path, note, now()::TIMESTAMP, $by FROM decide_stage;
