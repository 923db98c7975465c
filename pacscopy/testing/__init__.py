"""Test fixtures shipped with the package: the synthetic archive generator (python -m pacscopy.testing.synth)."""
