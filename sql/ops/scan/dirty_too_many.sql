-- Whether recording $n more changed rows would pass ops/scan/dirty_overflow's bound (more than $max
-- rows recorded, and more than a quarter of the index): then the next check is a full one anyway,
-- and the rows are not recorded first (a share of millions of files vanished).
SELECT $n + (SELECT count(*) FROM check_dirty) > greatest($max, (SELECT count(*) FROM files) / 4);
