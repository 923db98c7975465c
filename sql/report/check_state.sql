-- Whether `pacscopy check` has run, when, and how many instances scanned since are not in the plan.
SELECT
    (SELECT count(*) FROM findings) AS findings,
    (SELECT max(found_at) FROM findings) AS checked_at,
    (SELECT count(*) FROM plan_auto) AS planned,
    (SELECT count(*) FROM decisions) AS decisions,
    (SELECT count(DISTINCT f.sop_instance_uid)
       FROM files f
      WHERE f.status IN ('ok', 'suspect', 'corrupt') AND f.sop_instance_uid IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM plan_auto p WHERE p.sop_instance_uid = f.sop_instance_uid)) AS unplanned;
