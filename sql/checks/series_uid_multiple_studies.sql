-- One SeriesInstanceUID under different StudyInstanceUIDs
-- Narrow first (issue 12): the groups with more than one value, by min <> max (what count(DISTINCT) > 1
-- says, in a plain aggregate that spills), then the distinct lists of those groups alone. At 50 M
-- files, in a full check with status's figures kept, the distinct aggregates over every group ran
-- out of the default 1 GB.
WITH cand AS MATERIALIZED (
    SELECT series_instance_uid FROM instances
    WHERE series_instance_uid IS NOT NULL AND study_instance_uid IS NOT NULL
    GROUP BY 1
    HAVING min(study_instance_uid) <> max(study_instance_uid)
),
g AS (
    SELECT series_instance_uid, list(DISTINCT study_instance_uid ORDER BY study_instance_uid) AS studies
    FROM instances
    WHERE series_instance_uid IN (SELECT series_instance_uid FROM cand) AND study_instance_uid IS NOT NULL
    GROUP BY 1
    HAVING count(DISTINCT study_instance_uid) > 1
)
SELECT 'error' AS severity, i.path, i.sop_instance_uid, g.series_instance_uid AS group_key,
       'SeriesInstanceUID ' || g.series_instance_uid || ' under ' || len(g.studies) || ' studies: '
           || array_to_string(g.studies, ', ') AS detail,
       NULL::BOOLEAN AS recoverable
FROM instances i JOIN g USING (series_instance_uid)
