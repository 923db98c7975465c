-- The demo's review of every held instance: one decision each, with the note a reviewer would write.
-- scripts/demo writes its result to decisions.csv and records it with `pacscopy decide --csv`.
-- (In a real migration, people decide instance by instance; this file shows the shape.)
SELECT sop_instance_uid,
       CASE WHEN why LIKE '%accession_multiple_patients%' AND why NOT LIKE '%,%' THEN 'send'
            WHEN why LIKE '%missing_required_attribute%' THEN 'skip'
            ELSE 'hold' END AS action,
       CASE WHEN why LIKE '%accession_multiple_patients%' AND why NOT LIKE '%,%'
                 THEN 'demo review: the sample set reuses accession numbers across unrelated patients; sent as they are'
            WHEN why LIKE '%missing_required_attribute%'
                 THEN 'demo review: no PatientID, cannot be filed on the new PACS; left out until re-identified'
            WHEN why LIKE 'held: conflict%'
                 THEN 'demo review: copies with different content; kept back until the old PACS vendor says which is right'
            ELSE 'demo review: patient identity in question; kept back for the patient-identity team'
       END AS note
FROM plan
WHERE disposition = 'hold' AND NOT decided
ORDER BY sop_instance_uid
