-- The vanished files are marked.
DROP TABLE IF EXISTS temp.main.scan_gone;
