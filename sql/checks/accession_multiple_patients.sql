-- One AccessionNumber used for different patients
WITH g AS (
    SELECT accession_number, list(DISTINCT coalesce(patient_id, '(none)') ORDER BY coalesce(patient_id, '(none)')) AS ids
    FROM instances
    WHERE accession_number IS NOT NULL
    GROUP BY 1
    HAVING count(DISTINCT coalesce(patient_id, '')) > 1
)
SELECT 'error' AS severity, i.path, i.sop_instance_uid, g.accession_number AS group_key,
       'AccessionNumber ' || g.accession_number || ' used for ' || len(g.ids) || ' patients: '
           || array_to_string(g.ids, ', ') AS detail,
       NULL::BOOLEAN AS recoverable
FROM instances i JOIN g USING (accession_number)
