-- A run ended: release its claims that were not stored (not attempted, failed, interrupted).
DELETE FROM claims WHERE target = $target AND host_id = $host_id AND run_id = $run_id AND state = 'sending';
