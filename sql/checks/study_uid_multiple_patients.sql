-- One StudyInstanceUID under different patients (PatientID, or IssuerOfPatientID)
-- Name and birth date variants under one PatientID are patient_id_inconsistent_demographics.
-- Narrow first (issue 12): the groups with more than one value, by min <> max (what count(DISTINCT) > 1
-- says, in a plain aggregate that spills), then the distinct lists of those groups alone. At 50 M
-- files, in a full check with status's figures kept, the distinct aggregates over every group ran
-- out of the default 1 GB.
WITH cand AS MATERIALIZED (
    SELECT study_instance_uid FROM instances
    WHERE study_instance_uid IS NOT NULL
    GROUP BY 1
    HAVING min((coalesce(patient_id, ''), coalesce(issuer_of_patient_id, '')))
        <> max((coalesce(patient_id, ''), coalesce(issuer_of_patient_id, '')))
),
g AS (
    SELECT study_instance_uid,
           list(DISTINCT coalesce(patient_id, '(none)') || coalesce(' (issuer ' || issuer_of_patient_id || ')', '')
                ORDER BY coalesce(patient_id, '(none)') || coalesce(' (issuer ' || issuer_of_patient_id || ')', '')) AS ids,
           count(DISTINCT (coalesce(patient_id, ''), coalesce(issuer_of_patient_id, ''))) AS n_ids
    FROM instances
    WHERE study_instance_uid IN (SELECT study_instance_uid FROM cand)
    GROUP BY 1
    HAVING count(DISTINCT (coalesce(patient_id, ''), coalesce(issuer_of_patient_id, ''))) > 1
)
SELECT 'error' AS severity, i.path, i.sop_instance_uid, g.study_instance_uid AS group_key,
       'StudyInstanceUID ' || g.study_instance_uid || ' under ' || g.n_ids || ' patients ('
           || array_to_string(g.ids, ', ') || ')' AS detail,
       NULL::BOOLEAN AS recoverable
FROM instances i JOIN g USING (study_instance_uid)
