-- The shares other hosts registered for a target.
SELECT s.host_id, h.name, s.k, s.n FROM shares s JOIN hosts h USING (host_id)
WHERE s.target = $target AND s.host_id <> $host_id
;
