-- A part of the row ids of the files a scan did not find (a list).
INSERT INTO scan_gone SELECT unnest($rids);
