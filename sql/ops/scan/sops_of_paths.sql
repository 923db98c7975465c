-- The SOPInstanceUIDs of the rows at $paths (their instances' states move in status's kept figures).
SELECT DISTINCT sop_instance_uid FROM files
WHERE path IN (SELECT unnest($paths)) AND sop_instance_uid IS NOT NULL;
