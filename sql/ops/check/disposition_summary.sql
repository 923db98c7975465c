-- Instances per disposition (decisions applied), as the plan view gives them: plan_auto's own
-- dispositions, with each decided instance moved out of its automatic one into its decided one (the
-- plan view's CASE, schema 0031; tests/test_plan_narrow.py holds the two equal). plan_auto is grouped
-- alone, without a join of every instance's UID (at 50 M instances that join took ~11 s of every
-- check); the decisions find their rows by key.
WITH decided AS (
    SELECT a.disposition AS auto_disposition,
           CASE d.action WHEN 'send' THEN 'send' WHEN 'skip' THEN 'skip' WHEN 'hold' THEN 'hold'
                         ELSE a.disposition END AS disposition,
           a.size
    FROM decisions d
    JOIN plan_auto a ON a.sop_hash = sop_hash_of(d.sop_instance_uid) AND a.sop_instance_uid = d.sop_instance_uid
),
moves AS (
    SELECT disposition, count(*) AS instances, 0 AS decided, coalesce(sum(size), 0) AS bytes
    FROM plan_auto GROUP BY 1
    UNION ALL
    SELECT auto_disposition, -count(*), 0, -coalesce(sum(size), 0) FROM decided GROUP BY 1
    UNION ALL
    SELECT disposition, count(*), count(*), coalesce(sum(size), 0) FROM decided GROUP BY 1
)
SELECT disposition, sum(instances)::BIGINT AS instances, sum(decided)::BIGINT AS decided, sum(bytes)::HUGEINT AS bytes
FROM moves
GROUP BY 1
HAVING sum(instances) > 0
ORDER BY instances DESC;
