-- A digest of this host's plan as books publish sends it (ops/books/plan_rows.sql, read in as plan_rows):
-- the number of rows and the sum of each row's hash, independent of their order. Equal to the digest
-- kept in the books at the last publish exactly when the plan is the one published.
SELECT count(*)::VARCHAR || ':' || coalesce(sum(hash(r)), 0)::VARCHAR AS digest FROM plan_rows r;
