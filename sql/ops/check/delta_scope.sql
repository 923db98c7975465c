-- The files an incremental check re-evaluates, as a view over the key columns of files (temp view
-- check_scope_flags: row id and one flag per key column): the changed rows (path) and every file
-- sharing a key with one (its SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID, AccessionNumber
-- or PatientID, old or new value). Counted first (ops/check/delta_scope_count), then only the rows
-- of the groups copied for the checks are kept (ops/check/delta_scope_keys): a change spread over
-- every patient puts nearly every file in scope, and storing all their row ids cost more than it served.
CREATE OR REPLACE TEMP VIEW check_scope_flags AS
SELECT *
FROM (SELECT rowid AS rid,
             path IN (SELECT k FROM check_keys WHERE dim = 'path') AS path,
             sop_instance_uid IN (SELECT k FROM check_keys WHERE dim = 'sop_instance_uid') AS sop_instance_uid,
             study_instance_uid IN (SELECT k FROM check_keys WHERE dim = 'study_instance_uid') AS study_instance_uid,
             series_instance_uid IN (SELECT k FROM check_keys WHERE dim = 'series_instance_uid') AS series_instance_uid,
             accession_number IN (SELECT k FROM check_keys WHERE dim = 'accession_number') AS accession_number,
             patient_id IN (SELECT k FROM check_keys WHERE dim = 'patient_id') AS patient_id
      FROM files)
WHERE path OR sop_instance_uid OR study_instance_uid OR series_instance_uid OR accession_number OR patient_id;
