-- SOP classes of every instance the plan may send.
SELECT DISTINCT f.sop_class_uid
FROM plan p JOIN files f ON f.path = p.path
WHERE p.disposition IN ('send', 'blocked') AND f.sop_class_uid IS NOT NULL;
