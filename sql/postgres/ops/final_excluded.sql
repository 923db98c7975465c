-- Why instances of the whole migration are not sent to any target: the reasons, counted.
SELECT why, count(*) AS instances FROM final_states($target) WHERE state = 'excluded' GROUP BY why ORDER BY 2 DESC;
