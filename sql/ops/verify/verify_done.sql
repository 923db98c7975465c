-- What a verify run that is taken up again recorded already: the latest outcome per instance of
-- $target and $mode since $since (the run's start; results retired by verify --forget left out).
SELECT sop_instance_uid, outcome FROM verification_evidence
WHERE target = $target AND mode = $mode AND verified_at >= $since
QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY verified_at DESC, verification_id DESC) = 1;
