-- Load the staged PatientID mappings (a later load of the same old ID replaces the earlier
-- one); is_merge marks the lines that merge two patients (loaded with --merge).
INSERT OR REPLACE INTO patient_map (old_patient_id, new_patient_id, issuer_of_patient_id, source, is_merge)
SELECT old_id, new_id, issuer, $source, list_contains($merge_lines::INTEGER[], line)
FROM map_stage ORDER BY line;
