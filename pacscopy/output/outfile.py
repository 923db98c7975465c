"""Write output files whole, owner-only, or not at all.

Reports and exports hold patient data: the file is written under a temporary
name in the same folder (created 0600), flushed to disk, then renamed over the
target. A full disk or a crash leaves the old file (or none), never a
truncated one, and the result is 0600 even when it replaces a 0644 file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pacscopy.errors import InputError


def write_private(path: Path | str, text: str | Iterable[str]) -> None:
    """Write ``text`` (UTF-8; a string, or pieces written as they come) to ``path`` atomically with mode 0600."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if isinstance(text, str):
                f.write(text)
            else:
                for piece in text:
                    f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise InputError(f"cannot write {path}: {e.strerror} (nothing written)") from None
    except BaseException:  # the pieces' producer failed (or Ctrl-C): no partial file is left
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
