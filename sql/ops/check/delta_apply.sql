-- Apply one check's findings over the files of the changed groups (temp table check_new, the
-- check's SELECT over temp view files): for each of those files (and each changed row) whose
-- findings differ from the recorded ones, replace them; the SOPInstanceUIDs concerned are
-- re-planned (check_replan). Rows are compared by a hash of their values (narrow, and findings'
-- details can be long); found_at stays for the findings that did not change.
CREATE OR REPLACE TEMP TABLE check_old AS
SELECT path, sop_instance_uid, hash(severity, path, sop_instance_uid, group_key, detail, recoverable) AS h
FROM findings
WHERE check_id = $check_id
  AND (path IN (SELECT path FROM files) OR path IN (SELECT k FROM temp.main.check_keys WHERE dim = 'path'));
CREATE OR REPLACE TEMP TABLE check_changed AS
SELECT DISTINCT path
FROM ((SELECT path, h FROM check_old
       EXCEPT ALL SELECT path, hash(severity, path, sop_instance_uid, group_key, detail, recoverable) FROM check_new)
      UNION ALL
      (SELECT path, hash(severity, path, sop_instance_uid, group_key, detail, recoverable) FROM check_new
       EXCEPT ALL SELECT path, h FROM check_old));
INSERT INTO check_replan
SELECT sop_instance_uid FROM check_old WHERE path IN (SELECT path FROM check_changed) AND sop_instance_uid IS NOT NULL
UNION ALL
SELECT sop_instance_uid FROM check_new WHERE path IN (SELECT path FROM check_changed) AND sop_instance_uid IS NOT NULL;
DELETE FROM findings WHERE check_id = $check_id AND path IN (SELECT path FROM check_changed);
INSERT INTO findings (check_id, severity, path, sop_instance_uid, group_key, detail, recoverable)
SELECT $check_id, severity, path, sop_instance_uid, group_key, detail, recoverable
FROM check_new WHERE path IN (SELECT path FROM check_changed);
