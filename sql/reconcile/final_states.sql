-- One final state per SOPInstanceUID for $target (see the final_states table macro in sql/schema).
SELECT * FROM final_states($target) ORDER BY study_instance_uid, sop_instance_uid;
