-- What is wrong with the staged mapping, taken together with patient_map and the index:
-- `chain` (an ID mapped onto an ID that is itself mapped elsewhere: chains, cycles, swaps),
-- `merge_index` (the new ID already belongs to another patient in the index),
-- `merge_shared` (two old IDs mapped onto one new ID). other_line NULL: an earlier load.
WITH combined AS (
    SELECT line, old_id, new_id FROM map_stage
    UNION ALL
    SELECT NULL, old_patient_id, new_patient_id FROM patient_map
    WHERE old_patient_id NOT IN (SELECT old_id FROM map_stage)
),
chains AS (
    SELECT 'chain' AS kind, s.line, c.line AS other_line, s.old_id, s.new_id, c.old_id AS other_old,
           c.new_id AS other_new, NULL::BIGINT AS files
    FROM map_stage s JOIN combined c
      ON c.old_id <> c.new_id AND s.old_id <> s.new_id
     AND (c.old_id = s.new_id OR c.new_id = s.old_id)
),
taken AS (
    SELECT 'merge_index' AS kind, s.line, NULL::INTEGER AS other_line, s.old_id, s.new_id, NULL AS other_old,
           NULL AS other_new, count(*) AS files
    FROM map_stage s JOIN files f ON f.patient_id = s.new_id
    WHERE s.old_id <> s.new_id AND f.status <> 'missing'
    GROUP BY ALL
),
shared AS (
    SELECT 'merge_shared' AS kind, s.line, c.line AS other_line, s.old_id, s.new_id, c.old_id AS other_old,
           c.new_id AS other_new, NULL::BIGINT AS files
    FROM map_stage s JOIN combined c ON c.new_id = s.new_id AND c.old_id <> s.old_id
)
SELECT * FROM chains
UNION ALL SELECT * FROM taken
UNION ALL SELECT * FROM shared
ORDER BY kind = 'chain' DESC, line, other_line NULLS FIRST;
