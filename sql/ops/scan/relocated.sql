-- The rows ops/scan/upsert_relocate found, for the scan's list of rows still to replace.
SELECT path, rid FROM scan_relocated;
