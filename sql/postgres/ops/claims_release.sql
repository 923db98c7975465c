-- Give up claims not stored (failed, or never attempted before the run ended): another host may send them.
DELETE FROM claims
WHERE target = $target AND host_id = $host_id AND state = 'sending' AND sop_instance_uid = ANY($sops::text[]);
