-- After a probe: blocked instances by what send --transcode can do for them (hint: what is missing, NULL when
-- the instance can be transcoded; the class refused in every syntax gives 'refused').
SELECT CASE WHEN transcode_to IS NOT NULL THEN NULL
            WHEN why LIKE '%cannot rewrite it here: %' THEN regexp_extract(why, 'cannot rewrite it here: (.*)$', 1)
            ELSE 'refused' END AS hint,
       count(*) AS instances
FROM plan
WHERE disposition = 'blocked'
GROUP BY 1
ORDER BY instances DESC, hint NULLS FIRST;
