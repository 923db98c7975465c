-- Keep attribute lists not seen before: $ids[i] is the id of the list $tags[i].
INSERT INTO attr_tagsets (tagset, tags)
SELECT unnest($ids), unnest($tags);
