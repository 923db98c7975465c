-- The digests of paths a rescan replaces (kept in attr_versions first where the content changed).
DELETE FROM file_digests WHERE path IN (SELECT unnest($paths));
