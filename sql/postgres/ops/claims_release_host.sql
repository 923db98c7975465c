-- A host gone for good: give up its claims not stored (for $target, or every target when NULL), so the
-- other hosts send those instances. Returns how many were released.
WITH gone AS (
    DELETE FROM claims c USING hosts h
    WHERE c.host_id = h.host_id AND h.name = $host AND c.state = 'sending'
      AND ($target::text IS NULL OR c.target = $target::text)
    RETURNING 1
)
SELECT count(*) FROM gone;
