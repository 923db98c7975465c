"""The ``query`` command's library half: which SQL to run (text, a file or a shipped query's name).

Running it is :func:`pacscopy.index.query` (read-only, no file access).
"""

from __future__ import annotations

from pathlib import Path

from pacscopy import index as idx
from pacscopy.errors import InputError
from pacscopy.validate import read_text


def listing() -> list[tuple[str, str]]:
    """The shipped named queries and checks: (name, one-line description)."""
    return [(n, idx.description(p.read_text(encoding="utf-8"))) for n, p in idx.named_queries().items()]


def sql_text(sql: str | None, file: Path | None = None) -> str:
    """The SQL to run: ``sql`` itself or the shipped query it names, or the text of ``file``."""
    if file is not None:
        if sql is not None:
            raise InputError("give either SQL or -f FILE, not both")
        return read_text(file, "SQL file")
    if sql is None:
        raise InputError("give SQL, a query name (see 'pacscopy query --list') or -f FILE")
    named = idx.named_queries()
    return named[sql].read_text(encoding="utf-8") if sql in named else sql
