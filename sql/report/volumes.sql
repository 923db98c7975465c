-- Files and bytes per restored volume: sound (ok), damaged (corrupt, suspect, unreadable), other.
SELECT volume,
       count(*) AS files,
       coalesce(sum(size), 0) AS bytes,
       count(*) FILTER (WHERE status = 'ok') AS ok,
       count(*) FILTER (WHERE status IN ('corrupt', 'suspect', 'unreadable')) AS damaged,
       count(*) FILTER (WHERE status NOT IN ('ok', 'corrupt', 'suspect', 'unreadable')) AS other
FROM files
GROUP BY volume
ORDER BY volume;
