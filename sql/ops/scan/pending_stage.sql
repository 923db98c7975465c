-- The paths of the rows a scan still has to replace (relation frame: pacscopy.index.insert_frame), for
-- ops/scan/upsert_relocate.
CREATE OR REPLACE TEMP TABLE scan_pending AS SELECT path FROM frame;
