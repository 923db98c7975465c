"""The one error hierarchy of pacscopy.

Every error the library raises on purpose derives from :class:`PacscopyError`;
the CLI turns it into one line on stderr and an exit code. Messages say what
failed, for which file or peer, and what to do about it.
"""

from __future__ import annotations


class PacscopyError(Exception):
    """Base class: a failure the user can act on (exit code 2 by default)."""

    exit_code = 2


class IndexFileError(PacscopyError):
    """The index file is missing, is not a pacscopy index, or cannot be opened."""


class QueryError(PacscopyError):
    """Bad SQL, an unknown named query, or a write attempted through ``query``."""


class InputError(PacscopyError):
    """A bad argument, a missing root folder, a malformed input file."""
