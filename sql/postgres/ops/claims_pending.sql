-- This host's claims still 'sending' for $target: an earlier run ended without recording their answer here.
SELECT sop_instance_uid FROM claims WHERE target = $target AND host_id = $host_id AND state = 'sending';
