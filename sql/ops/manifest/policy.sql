-- The manifest policy rules recorded (rules without a row have their default).
SELECT rule, action FROM manifest_policy ORDER BY rule;
