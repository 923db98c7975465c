-- Load PatientID mappings (a later load of the same old ID replaces the earlier one).
INSERT OR REPLACE INTO patient_map (old_patient_id, new_patient_id, issuer_of_patient_id, source)
SELECT unnest($old), unnest($new), unnest($issuer), $source;
