-- patient_map: a mapping onto an ID that already belongs to another patient merges two
-- patients; it is loaded only with `map --merge`, and recorded as such.
ALTER TABLE patient_map ADD COLUMN is_merge BOOLEAN DEFAULT false;
