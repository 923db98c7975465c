"""The verify stage: per-instance proof at the target (C-FIND, commitment, retrieve-back) and the reconciliation."""
