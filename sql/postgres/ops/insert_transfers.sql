-- Record a flush of C-STORE attempts of one host's run (one array element per attempt).
INSERT INTO transfers (host_id, run_id, target, sop_instance_uid, started, finished, bytes, status, outcome,
                       error, wire_xxh3)
SELECT $host_id, $run_id, $target, t.*
FROM unnest($sop_instance_uid::text[], $started::timestamp[], $finished::timestamp[], $bytes::bigint[],
            $status::integer[], $outcome::text[], $error::text[], $wire_xxh3::text[]) AS t;
