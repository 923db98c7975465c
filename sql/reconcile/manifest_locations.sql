-- Per location the old PACS recorded: instances it knows, found in a scanned file, missing (broken
-- links, deleted ones apart), deleted, and verified on the target.
SELECT coalesce(location, '(not recorded)') AS location,
       count(*) AS known,
       count(*) FILTER (WHERE has_file) AS found,
       count(*) FILTER (WHERE NOT has_file AND manifest_state IS DISTINCT FROM 'deleted') AS missing,
       count(*) FILTER (WHERE manifest_state = 'deleted') AS deleted,
       count(*) FILTER (WHERE final_state = 'verified') AS verified
FROM manifest_final
WHERE in_manifest
GROUP BY 1
ORDER BY missing DESC, location
LIMIT $limit;
