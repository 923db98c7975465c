-- One SOPInstanceUID in several files with different content; names the attributes that differ
WITH c AS (
    SELECT f.path, f.sop_instance_uid, h.content_hash, h.element_hashes, h.note
    FROM files f JOIN content_hashes h ON h.path = f.path AND h.xxh3 = f.xxh3
    WHERE f.status = 'ok'
),
groups AS (
    SELECT sop_instance_uid, count(*) AS files
    FROM c GROUP BY 1
    HAVING count(DISTINCT coalesce(content_hash, path)) > 1
),
attrs AS (
    SELECT c.sop_instance_uid, e.key AS attr, c.path, e.value AS h
    FROM c JOIN groups USING (sop_instance_uid), unnest(map_entries(c.element_hashes)) AS t(e)
),
differing AS (
    SELECT a.sop_instance_uid, a.attr
    FROM attrs a JOIN groups g USING (sop_instance_uid)
    GROUP BY a.sop_instance_uid, a.attr, g.files
    HAVING count(DISTINCT a.h) > 1 OR count(*) < g.files
),
summary AS (
    SELECT sop_instance_uid, string_agg(attr, ', ' ORDER BY attr) AS attrs FROM differing GROUP BY 1
)
SELECT
    'error' AS severity,
    c.path,
    c.sop_instance_uid,
    c.sop_instance_uid AS group_key,
    g.files || ' files with this SOPInstanceUID differ in: '
        || coalesce(s.attrs, 'unknown (' || coalesce(c.note, 'not compared') || ')') AS detail,
    NULL::BOOLEAN AS recoverable
FROM c
JOIN groups g USING (sop_instance_uid)
LEFT JOIN summary s USING (sop_instance_uid)
