-- This host sends to the target without a share now (claims only).
DELETE FROM shares WHERE target = $target AND host_id = $host_id;
