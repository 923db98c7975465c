-- What besides the files the findings and the plan depend on, one value per source (compared
-- with the last check's: a difference makes the next check a full one).
SELECT (SELECT max(version) FROM schema_migrations)::VARCHAR AS schema,
       (SELECT count(*) || ':' || coalesce(bit_xor(hash(uid, name, keyword, retired, enhanced)), 0)
        FROM sop_classes) AS sop_classes,
       (SELECT count(*) || ':' || coalesce(bit_xor(hash(target, sop_class_uid, transfer_syntax_uid, accepted,
                                                          probed_at)), 0)
        FROM target_capabilities) AS capabilities,
       (SELECT coalesce(string_agg(rule || '=' || action, ',' ORDER BY rule), '') FROM manifest_policy)
           AS manifest_policy,
       (SELECT count(*) || ':' || coalesce(max(load_id), 0) FROM manifest_loads)
           || ':' || (SELECT count(*) FROM manifest) AS manifest;
