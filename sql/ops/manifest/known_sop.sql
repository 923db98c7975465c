-- Whether the manifest lists $sop.
SELECT 1 FROM manifest WHERE sop_instance_uid = $sop;
