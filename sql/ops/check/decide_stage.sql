-- Stage decisions (one row per CSV line, or the one --sop decision) for set-wise validation.
CREATE OR REPLACE TEMP TABLE decide_stage AS
SELECT unnest($line::INTEGER[]) AS line, unnest($sop::VARCHAR[]) AS sop_instance_uid,
       unnest($action::VARCHAR[]) AS action, unnest($note::VARCHAR[]) AS note, unnest($path::VARCHAR[]) AS path;
