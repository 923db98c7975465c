-- Studies, instances and bytes per modality (readable files: ok or suspect).
-- A study with several modalities counts under each of them.
SELECT coalesce(nullif(trim(modality), ''), '(none)') AS modality,
       count(DISTINCT study_instance_uid) AS studies,
       count(DISTINCT sop_instance_uid) AS instances,
       coalesce(sum(size), 0) AS bytes
FROM instances
GROUP BY 1
ORDER BY studies DESC, instances DESC, modality;
