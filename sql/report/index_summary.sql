-- The index at a glance: files and bytes (every row of files), instances (distinct SOPInstanceUIDs of
-- DICOM objects, damaged ones included), studies and patients (readable files: ok or suspect), scans.
SELECT
    (SELECT path FROM duckdb_databases() WHERE database_name = current_database()) AS path,
    (SELECT max(version) FROM schema_migrations) AS schema_version,
    count(*) AS files,
    coalesce(sum(size), 0) AS bytes,
    count(DISTINCT sop_instance_uid) FILTER (WHERE status IN ('ok', 'suspect', 'corrupt')) AS instances,
    count(DISTINCT study_instance_uid) FILTER (WHERE status IN ('ok', 'suspect')) AS studies,
    count(DISTINCT patient_id) FILTER (WHERE status IN ('ok', 'suspect')) AS patients,
    count(DISTINCT volume) AS volumes,
    (SELECT count(*) FROM scans) AS scans,
    (SELECT max(finished) FROM scans) AS last_scan,
    (SELECT count(*) FROM scans WHERE finished IS NULL) AS unfinished_scans
FROM files;
