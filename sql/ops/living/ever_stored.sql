-- Has anything ever been stored on $target?
SELECT count(*) > 0 FROM (SELECT 1 FROM transfers WHERE target = $target AND outcome IN ('stored', 'warning') LIMIT 1);
