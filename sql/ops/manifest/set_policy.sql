-- Set one rule of the manifest policy.
INSERT OR REPLACE INTO manifest_policy (rule, action, set_at) VALUES ($rule, $action, now()::TIMESTAMP);
