-- Studies, instances and bytes per study year (readable files: ok or suspect). A study's year is the
-- earliest year of its StudyDates; 'unknown' when no file of the study has a date.
WITH study_year AS (
    SELECT study_instance_uid,
           coalesce(min(CASE WHEN regexp_matches(study_date, '^[12][0-9]{3}') THEN substr(study_date, 1, 4) END),
                    'unknown') AS year
    FROM (SELECT DISTINCT study_instance_uid, study_date FROM instances   -- the dates matched once per study
          WHERE study_instance_uid IS NOT NULL)
    GROUP BY 1
)
SELECT y.year,
       count(DISTINCT i.study_instance_uid) AS studies,
       count(DISTINCT i.sop_instance_uid) AS instances,
       coalesce(sum(i.size), 0) AS bytes
FROM instances i JOIN study_year y USING (study_instance_uid)
GROUP BY y.year
ORDER BY y.year = 'unknown', y.year;
