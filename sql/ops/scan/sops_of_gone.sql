-- The SOPInstanceUIDs of the files a scan did not find (scan_gone): their instances' states move in status's kept figures.
SELECT DISTINCT sop_instance_uid FROM files
WHERE rowid IN (SELECT rid FROM scan_gone) AND sop_instance_uid IS NOT NULL;
