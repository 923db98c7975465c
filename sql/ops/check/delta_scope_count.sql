-- How many files an incremental check re-evaluates: the changed rows and every file sharing a
-- key with one (its SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID, AccessionNumber or
-- PatientID, old or new value); and per key column, the files of the groups it names.
WITH k AS (
    SELECT path IN (SELECT k FROM check_keys WHERE dim = 'path') AS path,
           sop_instance_uid IN (SELECT k FROM check_keys WHERE dim = 'sop_instance_uid') AS sop_instance_uid,
           study_instance_uid IN (SELECT k FROM check_keys WHERE dim = 'study_instance_uid') AS study_instance_uid,
           series_instance_uid IN (SELECT k FROM check_keys WHERE dim = 'series_instance_uid') AS series_instance_uid,
           accession_number IN (SELECT k FROM check_keys WHERE dim = 'accession_number') AS accession_number,
           patient_id IN (SELECT k FROM check_keys WHERE dim = 'patient_id') AS patient_id
    FROM files
)
SELECT count(*) AS files,
       count(*) FILTER (WHERE path OR sop_instance_uid OR study_instance_uid OR series_instance_uid
                        OR accession_number OR patient_id) AS scope,
       count(*) FILTER (WHERE sop_instance_uid) AS sop_instance_uid,
       count(*) FILTER (WHERE study_instance_uid) AS study_instance_uid,
       count(*) FILTER (WHERE series_instance_uid) AS series_instance_uid,
       count(*) FILTER (WHERE accession_number) AS accession_number,
       count(*) FILTER (WHERE patient_id) AS patient_id
FROM k;
