-- A synthetic archive of rows files with a hospital's shapes (pacscopy.testing.scale, scripts/bench make-index).
-- Rows start to stop - 1 of the archive (pacscopy.testing.scale.fill writes it in chunks, a
-- transaction each: the primary key's index of one 50 M-row insert did not fit 2 GB). $compact: the
-- index has schema 0030 (path_bytes and meta_sop_instance_uid NULL where they repeat another column).
-- The lines marked "schema 0031" (the instances' keys) are left out for an older index (scale.fill).
-- i: the row; inst: the instance it holds (1 % of rows duplicate their neighbour's instance,
-- 0.1 % with other dataset bytes: conflicting); 0.1 % corrupt; 50 instances per series, 3 series
-- per study, 3 studies per patient, study dates over 20 years, 250,000 files per volume.
INSERT INTO files BY NAME
WITH base AS (
    SELECT i,
           CASE WHEN i % 100 = 1 OR i % 1000 = 3 THEN i - 1 ELSE i END AS inst,
           i % 1000 = 3 AS conflicting
    FROM range($start, $stop) t(i)
),
k AS (
    SELECT i, inst, conflicting,
           inst // 50 AS series, inst // 150 AS study, inst // 450 AS patient,
           (inst // 150) % 7 AS device,
           hash(inst // 150) AS sh
    FROM base
),
u AS (
    SELECT *,
           -- device roots as vendors write them: <org root>.<device serial>.<date>.<counter>
           ['1.2.840.113619.2.55.3.604688119', '1.3.12.2.1107.5.1.4.73104', '1.2.392.200036.9116.2.6.1.48',
            '1.2.840.113704.1.111.3948', '1.3.46.670589.11.38011.5', '1.2.276.0.7230010.3.1.2.811',
            '1.2.826.0.1.3680043.2.1125.1'][device + 1] AS uid_root,
            DATE '2005-01-01' + CAST(sh % 7300 AS INTEGER) AS sdate
    FROM k
)
SELECT
    '/mnt/pacs_restore/archive01/tape' || lpad((i // 250000)::VARCHAR, 4, '0') || '/DICOM/' || strftime(sdate, '%Y/%m/%d')
        || '/S' || lpad(study::VARCHAR, 9, '0') || '/SE' || lpad(series::VARCHAR, 10, '0')
        || '/IM' || lpad(i::VARCHAR, 10, '0') || '.dcm' AS path,
    CASE WHEN NOT $compact THEN encode(path) END AS path_bytes,   -- schema 0030: NULL for a UTF-8 name
    'tape' || lpad((i // 250000)::VARCHAR, 4, '0') AS volume,
    '/mnt/pacs_restore/archive01/tape' || lpad((i // 250000)::VARCHAR, 4, '0') AS root,
    400000 + (hash(inst) % 200000)::BIGINT AS size,
    TIMESTAMP '2024-01-01' + to_seconds(i) AS mtime,
    i AS mtime_ns,
    md5('f' || i) AS xxh3,
    md5('d' || inst || CASE WHEN conflicting THEN 'x' ELSE '' END) AS dataset_xxh3,
    CASE WHEN i % 1000 = 7 THEN 'corrupt' ELSE 'ok' END AS status,
    CASE WHEN i % 1000 = 7 THEN 'truncated' END AS reason,
    true AS has_meta,
    330 AS dataset_offset,
    CASE WHEN device = 3 THEN '1.2.840.10008.1.2' WHEN device = 5 THEN '1.2.840.10008.1.2.4.70'
         ELSE '1.2.840.10008.1.2.1' END AS transfer_syntax_uid,
    CASE WHEN device IN (1, 4) THEN '1.2.840.10008.5.1.4.1.1.4' ELSE '1.2.840.10008.5.1.4.1.1.2' END
        AS meta_sop_class_uid,
    uid_root || '.' || strftime(sdate, '%Y%m%d') || '.' || (1000000 + study % 9000000) || '.'
        || (1 + series % 3) || '.' || (1 + inst % 50) || '.' || (10 + inst % 89) AS sop_instance_uid,
    CASE WHEN NOT $compact THEN sop_instance_uid END AS meta_sop_instance_uid,   -- 0030: NULL when equal
    meta_sop_class_uid AS sop_class_uid,
    uid_root || '.' || strftime(sdate, '%Y%m%d') || '.' || (1000000 + study % 9000000) || '.' || (100 + study % 900)
        AS study_instance_uid,
    uid_root || '.' || strftime(sdate, '%Y%m%d') || '.' || (1000000 + study % 9000000) || '.'
        || (1 + series % 3) || '.' || (100 + study % 900) AS series_instance_uid,
    'P' || lpad(patient::VARCHAR, 9, '0') AS patient_id,
    'PATIENT^' || patient AS patient_name,
    strftime(DATE '1930-01-01' + CAST(hash(patient) % 30000 AS INTEGER), '%Y%m%d') AS patient_birth_date,
    CASE hash(patient) % 2 WHEN 0 THEN 'F' ELSE 'M' END AS patient_sex,
    'A' || lpad(study::VARCHAR, 9, '0') AS accession_number,
    strftime(sdate, '%Y%m%d') AS study_date,
    CASE WHEN device IN (1, 4) THEN 'MR BRAIN' ELSE 'CT THORAX' END AS study_description,
    CASE WHEN device IN (1, 4) THEN 'MR' ELSE 'CT' END AS modality,
    1 + series % 3 AS series_number,
    1 + inst % 50 AS instance_number,
    512 AS rows, 512 AS columns,
    1000 AS pixel_data_offset, 524288 AS pixel_data_length, device = 5 AS encapsulated,
    TIMESTAMP '2026-11-01' AS first_seen, TIMESTAMP '2026-11-01' AS scanned_at, 1 AS scan_id,
    sop_hash_of(sop_instance_uid) AS sop_hash,  -- schema 0031
FROM u;
INSERT INTO scans (scan_id, root, volume, started, finished, rehash, files_new, files_changed,
                   files_unchanged, files_missing, bytes_read, version)
SELECT 1, '/mnt/restore', 'all', TIMESTAMP '2026-11-01', TIMESTAMP '2026-11-02', false, $rows, 0, 0, 0, 0, 'bench'
WHERE $start = 0;
