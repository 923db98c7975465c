-- Too many changes to be worth recording one by one (more than $max rows, or a quarter of the
-- index): forget them, the next check is a full one.
UPDATE check_state SET full_needed = true
WHERE (SELECT count(*) FROM check_dirty) > greatest($max, (SELECT count(*) FROM files) / 4);
DELETE FROM check_dirty WHERE (SELECT full_needed FROM check_state);
