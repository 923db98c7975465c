-- A rehash rewrites every row: no point recording them, the next check is a full one.
UPDATE check_state SET full_needed = true;
DELETE FROM check_dirty;
