-- How many files an incremental check re-evaluates (view check_scope_flags, ops/check/delta_scope): all
-- files, the scope, and per key column the files of the groups it names. One pass, nothing stored.
SELECT (SELECT count(*) FROM files) AS files,
       count(*) AS scope,
       count(*) FILTER (WHERE sop_instance_uid) AS sop_instance_uid,
       count(*) FILTER (WHERE study_instance_uid) AS study_instance_uid,
       count(*) FILTER (WHERE series_instance_uid) AS series_instance_uid,
       count(*) FILTER (WHERE accession_number) AS accession_number,
       count(*) FILTER (WHERE patient_id) AS patient_id
FROM check_scope_flags;
