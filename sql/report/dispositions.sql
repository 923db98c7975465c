-- Instances, user decisions and bytes per disposition of the plan (decisions applied).
SELECT disposition,
       count(*) AS instances,
       count(*) FILTER (WHERE decided) AS decided,
       coalesce(sum(size), 0) AS bytes
FROM plan
GROUP BY disposition
ORDER BY CASE disposition WHEN 'send' THEN 0 WHEN 'hold' THEN 1 WHEN 'quarantine' THEN 2 WHEN 'skip' THEN 3
                          WHEN 'blocked' THEN 4 ELSE 5 END, disposition;
