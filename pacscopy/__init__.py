"""pacscopy: file-level bulk copy and reconciliation for PACS migrations."""

__version__ = "0.1.0"
