-- Whether a scan records the keys of the rows it writes for the next incremental check: only
-- once a check ran (check_state) and while no full check is due anyway.
SELECT count(*) > 0 FROM check_state WHERE NOT full_needed;
