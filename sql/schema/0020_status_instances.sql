-- status's figures kept by key (issue 12): every kept target's planned instances with their final
-- state, planned bytes and whether the latest store answered with a warning. status_counts (0017)
-- stays the summary status reads (a dozen rows); this table is what a writer's batch is moved
-- from: the batch's old states are read (and replaced) here by key, so a journal merge of N lines
-- evaluates its N instances once (after the write, over slices of the books holding only those
-- instances: pacscopy/send/status_counts.py), not twice over the whole books.
-- sop_key = md5_number(sop_instance_uid): 16 bytes instead of a ~55-character UID.
CREATE TABLE status_instances (
    target      VARCHAR NOT NULL,
    sop_key     UHUGEINT NOT NULL,
    final_state VARCHAR NOT NULL,
    bytes       BIGINT NOT NULL,   -- plan.size
    warning     BOOLEAN NOT NULL   -- the latest store answered with a warning
);

-- Figures kept before 0020 have no per-instance states: the next status counts again (and keeps both).
DELETE FROM status_counts;
DELETE FROM status_kept;
