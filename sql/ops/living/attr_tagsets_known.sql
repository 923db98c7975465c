-- Which of the attribute lists $ids (digest ids, 8 bytes) the index already keeps.
SELECT tagset FROM attr_tagsets WHERE tagset IN (SELECT unnest($ids));
