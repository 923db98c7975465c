-- Forget what a target accepted before probing it again.
DELETE FROM target_capabilities WHERE target = $target;
