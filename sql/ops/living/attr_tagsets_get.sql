-- The attribute lists $ids (digest ids).
SELECT tagset, any_value(tags) FROM attr_tagsets WHERE tagset IN (SELECT unnest($ids)) GROUP BY 1;
