-- The target stored these instances (status success or a storing warning): the claims are final.
UPDATE claims SET state = 'stored'
WHERE target = $target AND host_id = $host_id AND sop_instance_uid = ANY($sops::text[]);
