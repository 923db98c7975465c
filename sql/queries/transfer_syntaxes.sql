-- Files per transfer syntax and encoding (with or without file meta)
SELECT transfer_syntax_uid, has_meta, count(*) AS files
FROM files
WHERE status IN ('ok', 'suspect', 'corrupt')
GROUP BY ALL
ORDER BY files DESC;
