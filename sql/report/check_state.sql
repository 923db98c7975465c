-- Whether `pacscopy check` has run, when, and how many instances scanned since are not in the plan.
-- (unplanned: an anti join on the UID; the correlated NOT EXISTS it replaces took 4 times the CPU
-- at 5 million files, BENCHMARKS.md)
SELECT
    (SELECT count(*) FROM findings) AS findings,
    (SELECT max(found_at) FROM findings) AS checked_at,
    (SELECT count(*) FROM plan_auto) AS planned,
    (SELECT count(*) FROM decisions) AS decisions,
    (SELECT count(DISTINCT f.sop_instance_uid)
       FROM (SELECT sop_instance_uid FROM files
             WHERE status IN ('ok', 'suspect', 'corrupt') AND sop_instance_uid IS NOT NULL) f
       ANTI JOIN (SELECT sop_instance_uid FROM plan_auto) p USING (sop_instance_uid)) AS unplanned;
