"""status's figures kept beside the index, valid only while the index is byte for byte unchanged.

Counting every planned instance by its final state (``sql/ops/send/send_status.sql``) reads the
whole books: minutes at tens of millions of instances. ``pacscopy status`` therefore keeps its
last figures per target in ``<index>.run/status-<digest>.json`` (owner-only) together with a
stamp of the index file and its write-ahead log (inode, size, modification and change times)
taken while status held the index open: DuckDB lets no process write while a reader has it, so
the stamp belongs to exactly the state the figures were computed from. Any later write (a
scan, check, send, verify, decide, map; even a checkpoint) changes the stamp, and status then
counts again: a figure is shown from the cache only when nothing in the index changed since it
was counted, never a stale one as current. The SQL and this pacscopy's version are part of the
key, so an upgrade recounts too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_VERSION = 1


def _file_stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def index_stamp(index_path: str) -> dict[str, Any]:
    """What identifies the index's bytes now: the file and its WAL (absent: None)."""
    return {"index": _file_stamp(index_path), "wal": _file_stamp(index_path + ".wal")}


def cache_file(index_path: str, target: str) -> Path:
    """``<index>.run/status-<digest of the target>.json``."""
    from pacscopy.runfolder import run_dir

    digest = hashlib.sha256(target.encode()).hexdigest()[:16]
    return run_dir(index_path, create=False) / f"status-{digest}.json"


def _key(target: str, sql: str) -> str:
    from pacscopy import __version__

    return hashlib.sha256(f"{_VERSION}\0{__version__}\0{target}\0{sql}".encode()).hexdigest()


def load(index_path: str, target: str, sql: str, stamp: dict[str, Any]) -> dict[str, Any] | None:
    """The cached figures if they were counted on exactly this index state, else None."""
    path = cache_file(index_path, target)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.debug("status cache %s unreadable (%s): counting again", path, e)
        return None
    if not isinstance(data, dict) or data.get("key") != _key(target, sql) or data.get("stamp") != stamp:
        return None
    figures = data.get("figures")
    return figures if isinstance(figures, dict) else None


def save(index_path: str, target: str, sql: str, stamp: dict[str, Any], figures: dict[str, Any]) -> None:
    """Keep the figures for the next status (best effort: a read-only place only loses the speed-up)."""
    path = cache_file(index_path, target)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"key": _key(target, sql), "stamp": stamp, "figures": figures}, f, default=str)
        os.replace(tmp, path)
    except OSError as e:
        log.debug("status cache %s not written: %s", path, e)
        try:
            os.unlink(tmp)
        except OSError:
            pass
