-- One SeriesInstanceUID under different StudyInstanceUIDs
WITH g AS (
    SELECT series_instance_uid, list(DISTINCT study_instance_uid ORDER BY study_instance_uid) AS studies
    FROM instances
    WHERE series_instance_uid IS NOT NULL AND study_instance_uid IS NOT NULL
    GROUP BY 1
    HAVING count(DISTINCT study_instance_uid) > 1
)
SELECT 'error' AS severity, i.path, i.sop_instance_uid, g.series_instance_uid AS group_key,
       'SeriesInstanceUID ' || g.series_instance_uid || ' under ' || len(g.studies) || ' studies: '
           || array_to_string(g.studies, ', ') AS detail,
       NULL::BOOLEAN AS recoverable
FROM instances i JOIN g USING (series_instance_uid)
