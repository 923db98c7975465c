-- Instances per final state (temp table reconcile_final: reconcile/materialise.sql for the target).
SELECT final_state, count(*) AS instances FROM reconcile_final GROUP BY 1 ORDER BY 2 DESC, 1;
