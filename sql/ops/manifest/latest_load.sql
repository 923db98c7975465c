-- The latest manifest load.
SELECT load_id, loaded_at, source, format, rows, columns FROM manifest_loads ORDER BY load_id DESC LIMIT 1;
