-- The verifications that still count (0006's view), with the retired ones left out by a join on the
-- latest forget per target and mode instead of a correlated NOT EXISTS (issue 12). The same rows:
-- a result is retired when some forget of its target and mode is at or after it, that is when the
-- latest such forget is. DuckDB planned the NOT EXISTS as a delim join that kept the view's filters
-- above it: every slice of a full evaluation of the books (in_slice) read every verification of the
-- target through it. At 50 M files that was ~14 of a slice's 46 CPU-s, and the slice spilled
-- (BENCHMARKS.md, "The first count"). Joined, the slice's filter reaches the scan of verifications.
CREATE OR REPLACE VIEW verification_evidence AS
SELECT v.* FROM verifications v
LEFT JOIN (SELECT target, mode, max(forgotten_at) AS forgotten_at FROM verification_forgets GROUP BY ALL) f
       ON f.target = v.target AND f.mode = v.mode
WHERE f.forgotten_at IS NULL OR f.forgotten_at < v.verified_at;
