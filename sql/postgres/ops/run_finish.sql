-- A host's send run ended (not reached when it was killed).
UPDATE runs SET finished = now(), outcome = $outcome WHERE host_id = $host_id AND run_id = $run_id;
