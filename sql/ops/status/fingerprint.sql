-- What the kept status figures hold for: the sizes of the books' tables and the marks every writer
-- leaves (a scan's run and the files it touched, a check's findings, a decision, a map, a manifest,
-- a forgotten verification). A writer that keeps the figures (status_counts.py) refreshes it in the
-- same transaction; any other write changes it, and status counts again. Cheap: counts and maxima.
SELECT concat_ws('|',
    (SELECT count(*) || ',' || coalesce(max(scanned_at)::VARCHAR, '') FROM files),
    (SELECT count(*) || ',' || coalesce(max(scan_id), 0) || ',' || coalesce(max(finished)::VARCHAR, '')
            || ',' || count(finished) FROM scans),
    (SELECT count(*) FROM plan_auto),
    (SELECT count(*) || ',' || coalesce(max(found_at)::VARCHAR, '') FROM findings),
    (SELECT count(*) || ',' || coalesce(max(decided_at)::VARCHAR, '') FROM decisions),
    (SELECT count(*) FROM transfers),
    (SELECT count(*) FROM verifications),
    (SELECT count(*) || ',' || coalesce(max(forgotten_at)::VARCHAR, '') FROM verification_forgets),
    (SELECT count(*) || ',' || coalesce(max(loaded_at)::VARCHAR, '') FROM patient_map),
    (SELECT count(*) FROM manifest),
    (SELECT count(*) FROM manifest_loads),
    (SELECT coalesce(string_agg(rule || '=' || action || '@' || set_at, ';' ORDER BY rule), '') FROM manifest_policy)
) AS fingerprint;
