-- How far journal $journal is merged (no row: not at all).
SELECT merged_bytes, merged_lines FROM journal_merges WHERE journal = $journal;
