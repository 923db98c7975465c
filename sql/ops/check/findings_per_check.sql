-- Files per check, for the check summary.
SELECT check_id, count(*) AS files FROM findings GROUP BY 1 ORDER BY 1;
