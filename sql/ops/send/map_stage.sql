-- Stage a PatientID mapping file (one row per CSV line) for set-wise validation.
CREATE OR REPLACE TEMP TABLE map_stage AS
SELECT unnest($line::INTEGER[]) AS line, unnest($old::VARCHAR[]) AS old_id,
       unnest($new::VARCHAR[]) AS new_id, unnest($issuer::VARCHAR[]) AS issuer;
