-- An incremental check's starting point: the keys of the changed rows (old and new values) in
-- check_dirty, one row per (key column, value); check_replan collects the SOPInstanceUIDs whose
-- findings change.
CREATE OR REPLACE TEMP TABLE check_keys AS
SELECT DISTINCT dim, k
FROM (UNPIVOT (SELECT path, sop_instance_uid, study_instance_uid, series_instance_uid, accession_number, patient_id
               FROM check_dirty)
      ON path, sop_instance_uid, study_instance_uid, series_instance_uid, accession_number, patient_id
      INTO NAME dim VALUE k)
WHERE k IS NOT NULL;
CREATE OR REPLACE TEMP TABLE check_replan (sop_instance_uid VARCHAR);
