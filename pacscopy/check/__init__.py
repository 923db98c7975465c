"""The check stage: the SQL checks, the plan per SOPInstanceUID, content digests and decisions."""
