-- Every planned instance's final state for $target (macro final_states), its planned bytes and
-- whether the latest store answered with a warning: the rows of table status_instances (0020).
-- Run over the whole index (a full count) or over the slices status_counts.py puts in front of
-- the books (temporary tables holding only a batch's instances: sql/ops/status/slices.sql).
SELECT $target AS target, md5_number(f.sop_instance_uid) AS sop_key, f.final_state,
       coalesce(a.size, 0)::BIGINT AS bytes, coalesce(s.with_warning, false) AS warning
FROM final_states($target) f
LEFT JOIN (SELECT sop_instance_uid, size FROM plan_auto) a USING (sop_instance_uid)
LEFT JOIN (SELECT sop_instance_uid, with_warning FROM stored_content WHERE target = $target) s
       USING (sop_instance_uid)
