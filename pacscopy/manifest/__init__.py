"""The old PACS's own database export (the manifest): load it, validate it, the plan's policy for it."""

from pacscopy.manifest.load import (
    COLUMNS,
    FORMATS,
    POLICY,
    LoadResult,
    ManifestError,
    current_policy,
    guess_format,
    load_manifest,
    manifest_rewritten,
    parse_mapping,
    parse_policy,
    set_policy,
)

__all__ = ["COLUMNS", "FORMATS", "POLICY", "LoadResult", "ManifestError", "current_policy", "guess_format",
           "load_manifest", "manifest_rewritten", "parse_mapping", "parse_policy", "set_policy"]
