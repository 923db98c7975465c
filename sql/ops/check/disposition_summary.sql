-- Instances per disposition (decisions applied).
SELECT disposition, count(*) AS instances, count(*) FILTER (WHERE decided) AS decided,
       coalesce(sum(size), 0) AS bytes
FROM plan
GROUP BY 1
ORDER BY instances DESC;
