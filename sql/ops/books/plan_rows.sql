-- This host's plan as published to the shared books (books publish): one row per SOPInstanceUID.
SELECT p.sop_instance_uid, p.study_instance_uid, p.sop_class_uid, p.disposition, p.why, p.size, f.dataset_xxh3
FROM plan p
LEFT JOIN files f ON f.path = p.path;
