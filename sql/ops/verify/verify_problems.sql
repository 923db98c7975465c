-- Instances whose latest verification in $mode against $target is not 'verified'.
SELECT sop_instance_uid, outcome, detail
FROM verification_latest
WHERE target = $target AND mode = $mode AND outcome <> 'verified'
ORDER BY outcome, sop_instance_uid
LIMIT 50;
