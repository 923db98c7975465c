-- Refresh the SOP class dictionary (from pydicom) used by the checks and reports.
DELETE FROM sop_classes;
INSERT INTO sop_classes
SELECT unnest($uid), unnest($name), unnest($keyword), unnest($retired), unnest($enhanced);
