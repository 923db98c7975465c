-- One AccessionNumber used for different patients
-- Narrow first (issue 12): the groups with more than one value, by min <> max (what count(DISTINCT) > 1
-- says, in a plain aggregate that spills), then the distinct lists of those groups alone. At 50 M
-- files, in a full check with status's figures kept, the distinct aggregates over every group ran
-- out of the default 1 GB.
WITH cand AS MATERIALIZED (
    SELECT accession_number FROM instances
    WHERE accession_number IS NOT NULL
    GROUP BY 1
    HAVING min(coalesce(patient_id, '')) <> max(coalesce(patient_id, ''))
),
g AS (
    SELECT accession_number, list(DISTINCT coalesce(patient_id, '(none)') ORDER BY coalesce(patient_id, '(none)')) AS ids
    FROM instances
    WHERE accession_number IN (SELECT accession_number FROM cand)
    GROUP BY 1
    HAVING count(DISTINCT coalesce(patient_id, '')) > 1
)
SELECT 'error' AS severity, i.path, i.sop_instance_uid, g.accession_number AS group_key,
       'AccessionNumber ' || g.accession_number || ' used for ' || len(g.ids) || ' patients: '
           || array_to_string(g.ids, ', ') AS detail,
       NULL::BOOLEAN AS recoverable
FROM instances i JOIN g USING (accession_number)
