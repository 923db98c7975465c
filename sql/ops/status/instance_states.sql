-- Every planned instance's final state for $target (macro final_states), its planned bytes and
-- whether the latest store answered with a warning: the rows of table status_instances (0020).
-- Run over the whole index (a full count) or over the slices status_counts.py puts in front of
-- the books (temporary tables holding only a batch's instances: sql/ops/status/slices.sql).
-- final_states_wide_of (0023) gives the key, the bytes and the warning with the state.
SELECT $target AS target, k AS sop_key, final_state, coalesce(size, 0)::BIGINT AS bytes, with_warning AS warning
FROM final_states_wide_of($target, false)
