-- The local record of instances the target stored, among $sops (claims the shared books still have as
-- 'sending'): one row each, the latest storing attempt (books catch-up after a run died or PostgreSQL went away).
SELECT run_id, sop_instance_uid, started, finished, bytes, status, outcome, error, wire_xxh3
FROM transfers
WHERE target = $target AND outcome IN ('stored', 'warning') AND sop_instance_uid IN (SELECT unnest($sops))
QUALIFY row_number() OVER (PARTITION BY sop_instance_uid ORDER BY finished DESC, transfer_id DESC) = 1;
