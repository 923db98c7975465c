-- The rows replaced that moved (ops/scan/upsert_moved), found by path: one pass over files' path column.
INSERT INTO scan_replaced
SELECT f.rowid, f.path, f.first_seen, f.sop_instance_uid, f.study_instance_uid, f.series_instance_uid,
    f.accession_number, f.patient_id
FROM files f
SEMI JOIN (SELECT b.path FROM scan_batch b
           WHERE b.old_rid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM scan_replaced r WHERE r.path = b.path)) m
    ON f.path = m.path;
