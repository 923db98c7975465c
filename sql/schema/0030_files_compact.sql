-- files without the two columns that repeat another in nearly every row (issue 12, "Compact";
-- BENCHMARKS.md, "Index compaction"). At 1 M files they were 48 MB of the table's 154:
-- - path_bytes held the file name's bytes for every file, though for a name that is valid UTF-8
--   they are path's own bytes: it is now kept only for the names that are not (NULL otherwise), and
--   what opens a file reads coalesce(path_bytes, encode(path)) (macro file_path_bytes);
-- - meta_sop_instance_uid (the file meta's MediaStorageSOPInstanceUID) equals sop_instance_uid in
--   every sound file: it is now NULL when it equals it, '' when the file meta has none while the
--   dataset has one (a UID is never empty: the scan reads an empty value as none), and the UID
--   itself otherwise. Macro meta_sop_uid gives the value as read (what the checks compare).
ALTER TABLE files ALTER COLUMN path_bytes DROP NOT NULL;

-- The exact bytes of a file's name, from its row's path and path_bytes.
CREATE MACRO file_path_bytes(path, path_bytes) AS coalesce(path_bytes, encode(path));

-- meta_sop_instance_uid as stored, from the value read (meta) and the dataset's SOPInstanceUID.
CREATE MACRO meta_sop_uid_stored(meta, sop) AS
    CASE WHEN meta IS NOT DISTINCT FROM sop THEN NULL ELSE coalesce(meta, '') END;

-- The file meta's MediaStorageSOPInstanceUID as read (NULL: none), from the stored column.
CREATE MACRO meta_sop_uid(stored, sop) AS
    CASE WHEN stored IS NULL THEN sop ELSE nullif(stored, '') END;

UPDATE files SET path_bytes = NULL WHERE path_bytes = encode(path);
UPDATE files SET meta_sop_instance_uid = meta_sop_uid_stored(meta_sop_instance_uid, sop_instance_uid)
WHERE meta_sop_instance_uid IS NOT DISTINCT FROM sop_instance_uid
   OR meta_sop_instance_uid IS NULL;
