-- The plan set aside by plan_rebuild_begin, replaced by the one build_plan wrote.
DROP TABLE plan_auto_replaced;
