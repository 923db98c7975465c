-- The files of an incremental check's scope, copied once (temp table check_scope, with their row id)
-- for every check grouped by a key column whose changed groups are a small part of the index (the
-- parameter named after the key column: true for those): each such check then reads these rows (checks.py, _scope_view) instead
-- of a pass over the whole of files. Fetched by row id after check_scope_keys' one pass.
CREATE OR REPLACE TEMP TABLE check_scope AS
SELECT rowid AS rid, *
FROM files
WHERE rowid IN (SELECT rid FROM check_scope_keys
                WHERE path OR (sop_instance_uid AND $sop_instance_uid) OR (study_instance_uid AND $study_instance_uid)
                   OR (series_instance_uid AND $series_instance_uid) OR (accession_number AND $accession_number)
                   OR (patient_id AND $patient_id));
