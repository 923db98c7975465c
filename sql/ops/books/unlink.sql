-- Forget the earlier link before recording the new one (same transaction).
DELETE FROM books_link;
