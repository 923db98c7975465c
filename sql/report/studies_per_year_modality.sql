-- Studies per study year and main modality (the modality with the most instances in the study), so
-- that every study counts once and the modalities of a year add up to its studies.
WITH per_modality AS (
    SELECT study_instance_uid, coalesce(nullif(trim(modality), ''), '(none)') AS modality, count(*) AS n,
           min(CASE WHEN regexp_matches(study_date, '^[12][0-9]{3}') THEN substr(study_date, 1, 4) END) AS year
    FROM instances
    WHERE study_instance_uid IS NOT NULL
    GROUP BY ALL
),
study AS (
    SELECT study_instance_uid,
           coalesce(min(year) OVER (PARTITION BY study_instance_uid), 'unknown') AS year,
           modality
    FROM per_modality
    QUALIFY row_number() OVER (PARTITION BY study_instance_uid ORDER BY n DESC, modality) = 1
)
SELECT year, modality, count(*) AS studies
FROM study
GROUP BY year, modality
ORDER BY year = 'unknown', year, studies DESC, modality;
