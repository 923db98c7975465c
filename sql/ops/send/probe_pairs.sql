-- (SOP class, transfer syntax) pairs of every instance the plan may send.
SELECT DISTINCT f.sop_class_uid, f.transfer_syntax_uid
FROM plan p JOIN files f ON f.path = p.path
WHERE p.disposition IN ('send', 'blocked') AND f.sop_class_uid IS NOT NULL AND f.transfer_syntax_uid IS NOT NULL;
