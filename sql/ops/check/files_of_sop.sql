-- The files of one SOPInstanceUID (to validate a decision).
SELECT path, status FROM files WHERE sop_instance_uid = $sop ORDER BY path;
