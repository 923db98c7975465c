-- Files and bytes per status and reason.
SELECT status, reason, count(*) AS files, coalesce(sum(size), 0) AS bytes
FROM files
GROUP BY status, reason
ORDER BY CASE status WHEN 'ok' THEN 0 WHEN 'suspect' THEN 1 WHEN 'corrupt' THEN 2 WHEN 'unreadable' THEN 3
                     WHEN 'missing' THEN 4 WHEN 'dicomdir' THEN 5 WHEN 'not_dicom' THEN 6 ELSE 7 END,
         files DESC, reason NULLS FIRST;
