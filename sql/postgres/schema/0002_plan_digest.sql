-- What each host published (books publish): a digest of the plan rows as sent (pacscopy/pg/books.py,
-- plan_digest), so that a send can tell whether the host's local plan changed since its last publish
-- (a check, decide, map or manifest load after it) and publish it again before sending.
ALTER TABLE hosts ADD COLUMN plan_digest text;
