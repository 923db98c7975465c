-- The targets any host sent to (from the runs), for the whole migration's report.
SELECT DISTINCT target FROM runs ORDER BY 1;
