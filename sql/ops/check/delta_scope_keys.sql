-- The scope's rows an incremental check reads from its copy (temp table check_scope_keys: row id and
-- the flags of ops/check/delta_scope): the changed rows, and the files of the groups of each key column
-- whose changed groups are a small part of the index (the parameter named after the key column: true
-- for those; checks.py, COPY_SHARE). The other key columns' checks read files through a join or whole.
CREATE OR REPLACE TEMP TABLE check_scope_keys AS
SELECT *
FROM check_scope_flags
WHERE path OR (sop_instance_uid AND $sop_instance_uid) OR (study_instance_uid AND $study_instance_uid)
   OR (series_instance_uid AND $series_instance_uid) OR (accession_number AND $accession_number)
   OR (patient_id AND $patient_id);
