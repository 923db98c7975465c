"""Every exception pacscopy defines.

Every error the library raises on purpose derives from :class:`PacscopyError`;
the CLI turns it into one line on stderr and an exit code. Messages say what
failed, for which file or peer, and what to do about it. The last three are
signals inside the sender, never shown to a user as they are.
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


class ManifestError(InputError):
    """A manifest export that cannot be loaded; the earlier manifest is kept."""


class WorkerError(PacscopyError):
    """A scan worker process failed or died: the scan cannot know what it missed.

    The scan stops; what it wrote so far stays, and the next scan reads the rest.
    """


class ProbeError(PacscopyError):
    """The target did not answer C-ECHO or refused every association."""


class VerifyError(PacscopyError):
    """The target cannot be verified at all (unreachable, refuses the service)."""


class BooksError(PacscopyError):
    """The shared books in PostgreSQL are unreachable, belong to another migration, or refuse a share."""


# -- signals inside the sender ---------------------------------------------------------

class SourceChanged(Exception):
    """The bytes read for sending are not the bytes the index recorded."""


class LinkLost(Exception):
    """The association ended or broke while a C-STORE was in flight."""


class AssociationFailed(Exception):
    """No association: ``kind`` is ``rejected``, ``aborted`` or ``connection``; the message says why.

    ``permanent`` is set for an A-ASSOCIATE-RJ with result "rejected-permanent":
    the target will refuse every retry until someone changes its configuration.
    ``reason`` is the A-ASSOCIATE-RJ's (source, reason) pair.
    """

    def __init__(self, kind: str, detail: str, *, permanent: bool = False,
                 reason: tuple[int, int] | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.permanent = permanent
        self.reason = reason


class IndexBusyError(IndexFileError):
    """The index stayed held by another process (named in the message) for longer than the lock wait."""


class TargetBusyError(PacscopyError):
    """A send to this target (a verify of it, a scan of this root) from this index is already running (named)."""
