-- A send run to target: sent of the instances stored (0.1 % of those failed), verified of the stored
-- verified by C-FIND. Only SOPInstanceUIDs are referenced, as a real send would: check before or after.
-- For the files rows start to stop - 1 (mtime_ns is the row number), a chunk at a time.
INSERT INTO send_runs (run_id, target, started, finished, associations, queued, stored, warnings,
                       failed, not_sent, bytes, outcome)
SELECT 1, $target, TIMESTAMP '2026-11-03', TIMESTAMP '2026-11-05', 2, 0, 0, 0, 0, 0, 0, 'incomplete'
WHERE $start = 0;
INSERT INTO transfers BY NAME
SELECT 1 AS run_id, $target AS target, sop_instance_uid, path,
       TIMESTAMP '2026-11-03' + to_milliseconds($start + row_number() OVER ()) AS started,
       TIMESTAMP '2026-11-03' + to_milliseconds($start + row_number() OVER () + 5) AS finished, size AS bytes,
       CASE WHEN hash(path) % 1000 = 0 THEN 42752 ELSE 0 END AS status,
       CASE WHEN hash(path) % 1000 = 0 THEN '0xA700' ELSE '0x0000' END AS status_hex,
       CASE WHEN hash(path) % 1000 = 0 THEN 'Out of Resources' ELSE 'Success' END AS status_meaning,
       CASE WHEN hash(path) % 1000 = 0 THEN 'failed' ELSE 'stored' END AS outcome,
       dataset_xxh3 AS wire_xxh3, transfer_syntax_uid, 1 AS association,
       -- what a real send records (sql/schema/0010): the copy read and the header sent, so the books
       -- see the stored content as current and the C-FIND verifications count
       dataset_xxh3 AS source_xxh3, patient_id AS sent_patient_id,
       {'PatientName': patient_name, 'PatientBirthDate': patient_birth_date, 'PatientSex': patient_sex,
        'IssuerOfPatientID': issuer_of_patient_id, 'AccessionNumber': accession_number, 'StudyDate': study_date,
        'StudyDescription': study_description, 'Modality': modality, 'StudyInstanceUID': study_instance_uid,
        'SeriesInstanceUID': series_instance_uid, 'SOPClassUID': sop_class_uid,
        'TransferSyntaxUID': transfer_syntax_uid, 'SeriesNumber': series_number,
        'InstanceNumber': instance_number, 'Rows': rows, 'Columns': columns,
        'NumberOfFrames': number_of_frames, 'PixelDataLength': pixel_data_length} AS sent_header,
       sop_hash_of(sop_instance_uid) AS sop_hash,  -- schema 0031
FROM files
WHERE status = 'ok' AND NOT (mtime_ns % 100 = 1 OR mtime_ns % 1000 = 3)   -- one copy per instance
  AND hash(sop_instance_uid) % 1000 < $sent * 1000
  AND mtime_ns >= $start AND mtime_ns < $stop;
INSERT INTO verifications BY NAME
SELECT $target AS target, sop_instance_uid, 'find' AS mode, TIMESTAMP '2026-11-06' AS verified_at,
       'verified' AS outcome, NULL AS detail,
       sop_hash_of(sop_instance_uid) AS sop_hash,  -- schema 0031
FROM transfers
WHERE outcome = 'stored' AND hash(sop_instance_uid) % 1000 < $verified * 1000
  AND transfer_id > $transfers_before;
