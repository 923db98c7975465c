-- SOP classes outside the DICOM root 1.2.840.10008 (warning); enhanced and retired classes targets often refuse (info)
SELECT
    CASE WHEN NOT starts_with(f.sop_class_uid, '1.2.840.10008.') THEN 'warning' ELSE 'info' END AS severity,
    f.path, f.sop_instance_uid, f.sop_class_uid AS group_key,
    CASE WHEN NOT starts_with(f.sop_class_uid, '1.2.840.10008.')
             THEN 'private SOP class ' || f.sop_class_uid || ': most targets refuse it'
         WHEN s.retired THEN 'retired SOP class ' || f.sop_class_uid || ' (' || s.name || ')'
         ELSE 'enhanced SOP class ' || f.sop_class_uid || ' (' || s.name || ')' END AS detail,
    NULL::BOOLEAN AS recoverable
FROM instances f
LEFT JOIN sop_classes s ON s.uid = f.sop_class_uid
WHERE f.sop_class_uid IS NOT NULL
  AND (NOT starts_with(f.sop_class_uid, '1.2.840.10008.') OR s.retired OR s.enhanced)
