-- verify --forget: retire every result of $mode for $target recorded so far (the rows stay); returns how many.
INSERT INTO verification_forgets (target, mode, forgotten_at, rows_retired, note)
SELECT $target, $mode, $forgotten_at, count(*), $note
FROM verification_evidence WHERE target = $target AND mode = $mode
RETURNING rows_retired;
