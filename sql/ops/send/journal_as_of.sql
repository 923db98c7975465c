-- When journal $journal was last merged into the index (no row: not yet).
SELECT merged_at FROM journal_merges WHERE journal = $journal;
