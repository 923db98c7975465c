-- Updates stored on $target and not yet proven by a retrieve-back (verify retrieves them).
SELECT sop_instance_uid FROM books($target) WHERE content = 'update_unproven' ORDER BY 1;
