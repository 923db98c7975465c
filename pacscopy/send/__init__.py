"""The send stage: probe the target's capabilities, the send queue, the worker processes that stream C-STOREs."""
