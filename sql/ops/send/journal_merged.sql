-- Record, in the transaction of the rows merged, how far journal $journal is merged now.
INSERT INTO journal_merges (journal, run_id, target, pid, host, merged_bytes, merged_lines, first_merged, merged_at,
                            merged_by, finished)
VALUES ($journal, $run_id, $target, $pid, $host, $merged_bytes, $merged_lines, now()::TIMESTAMP, now()::TIMESTAMP,
        $merged_by, $finished)
ON CONFLICT (journal) DO UPDATE SET merged_bytes = excluded.merged_bytes, merged_lines = excluded.merged_lines,
    merged_at = excluded.merged_at, merged_by = excluded.merged_by,
    finished = journal_merges.finished OR excluded.finished;
