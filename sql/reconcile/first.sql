-- The SOPInstanceUIDs of the first $limit planned instances (by study, then SOPInstanceUID) whose
-- state (table status_instances, by key) is one of $states: a top-N, memory bounded by $limit.
-- Their rows and reasons are then evaluated for these instances only (reconcile/listed.sql).
SELECT p.sop_instance_uid
FROM (SELECT sop_instance_uid, study_instance_uid FROM plan) p
JOIN (SELECT sop_key FROM status_instances WHERE target = $target AND list_contains($states, final_state)) k
  ON k.sop_key = md5_number(p.sop_instance_uid)
ORDER BY p.study_instance_uid, p.sop_instance_uid
LIMIT $limit;
