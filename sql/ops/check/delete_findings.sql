-- Forget the findings of one check before it runs again.
DELETE FROM findings WHERE check_id = $check_id;
