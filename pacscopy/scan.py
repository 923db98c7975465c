"""Scan restored archive volumes into the index.

Two phases: a walk (``lstat`` only, never following links, never opening
anything but regular files) collects the work; then worker processes read
each changed file once, hashing and parsing the same bytes, and the calling
process alone writes batches to DuckDB. Nothing here prints: progress goes to
a callback, the result is a :class:`ScanResult`.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

from pacscopy import __version__
from pacscopy.errors import InputError
from pacscopy.fileread import VALUE_COLUMNS, inspect_many, read_and_inspect
from pacscopy.index import insert_columns, run

log = logging.getLogger(__name__)

#: Columns written for every file, in the order of a result row.
COLUMNS = (
    "path", "path_bytes", "volume", "root", "size", "mtime_us", "mtime_ns", "xxh3", "dataset_xxh3", "status",
    "reason", "detail", "has_meta", "dataset_offset", "transfer_syntax_uid", "detected_syntax",
    "meta_sop_class_uid", "meta_sop_instance_uid",
    *VALUE_COLUMNS,
    "pixel_data_offset", "pixel_data_length", "encapsulated",
)
BATCH_ROWS = 2000
BATCH_SECONDS = 2.0


@dataclass
class ScanResult:
    """Counts of one scan of one root."""

    root: str
    volume: str
    scan_id: int
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    missing: int = 0
    files_read: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)


def display_path(p: bytes) -> str:
    """A path as text for the index key: UTF-8, other bytes as ``\\xNN``.

    ``path_bytes`` keeps the exact bytes; this form is for people and SQL.
    """
    return p.decode("utf-8", "backslashreplace")


@dataclass
class _Entry:
    path: bytes
    size: int
    mtime_ns: int
    status: str = "ok"  # ok (a regular file to read) | skipped | unreadable
    reason: str | None = None
    detail: str | None = None


def walk(root: bytes) -> Iterator[_Entry]:
    """Every entry under ``root``, never following symlinks and never looping."""
    seen_dirs: set[tuple[int, int]] = set()
    try:
        st = os.lstat(root)
    except OSError as e:
        yield _Entry(root, 0, 0, "unreadable", "os_error", e.strerror)
        return
    if not stat.S_ISDIR(st.st_mode):
        yield _entry(root, st)
        return
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            dst = os.lstat(d)
            key = (dst.st_dev, dst.st_ino)
            if key in seen_dirs:  # bind mounts can loop even without symlinks
                yield _Entry(d, 0, 0, "skipped", "loop", "folder already visited (bind mount loop)")
                continue
            seen_dirs.add(key)
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            yield _Entry(d, 0, 0, "unreadable", "os_error", f"cannot list folder: {e.strerror}")
            continue
        subdirs = []
        for entry in entries:
            p = entry.path
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as err:
                yield _Entry(p, 0, 0, "unreadable", "os_error", err.strerror)
                continue
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(p)
            else:
                yield _entry(p, st)
        stack.extend(reversed(subdirs))


def _entry(p: bytes, st: os.stat_result) -> _Entry:
    """A non-directory entry: a regular file to read, or a skipped one and why."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return _Entry(p, st.st_size, st.st_mtime_ns)
    e = _Entry(p, st.st_size, st.st_mtime_ns, "skipped")
    if stat.S_ISLNK(mode):
        try:
            target = display_path(os.readlink(p))
        except OSError:
            target = "?"
        if not os.path.exists(p):
            e.reason, e.detail = "symlink", f"dangling or looping symlink -> {target}"
        else:
            e.reason, e.detail = "symlink", f"symlink -> {target} (links are never followed)"
    elif stat.S_ISFIFO(mode):
        e.reason, e.detail = "fifo", "named pipe, never opened"
    elif stat.S_ISSOCK(mode):
        e.reason, e.detail = "socket", "socket, never opened"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        e.reason, e.detail = "device", "device node, never opened"
    else:
        e.reason, e.detail = "special", "not a regular file"
    return e


class _Writer:
    """The single writer: buffers rows and writes them in batches, one transaction each."""

    def __init__(self, con: duckdb.DuckDBPyConnection, scan_id: int, volume: str, root: str,
                 known: dict[str, Any]) -> None:
        self.con, self.scan_id, self.volume, self.root = con, scan_id, volume, root
        self.known = known  # paths already in the index: upserted; all others plainly inserted
        self.rows: list[dict[str, Any]] = []
        self.last = time.monotonic()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= BATCH_ROWS or time.monotonic() - self.last > BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        new: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        old: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        for r in self.rows:
            path = display_path(r["path_bytes"])
            mt = r.get("mtime_ns")
            r = {**r, "path": path, "volume": self.volume, "root": self.root,
                 "mtime_us": None if mt is None else mt // 1000}
            cols = old if path in self.known else new
            for c in COLUMNS:
                cols[c].append(r.get(c))
        self.con.execute("BEGIN TRANSACTION")
        try:
            if new["path"]:
                insert_columns(self.con, "ops/insert_files", new, scan_id=self.scan_id)
            if old["path"]:
                insert_columns(self.con, "ops/upsert_files", old, scan_id=self.scan_id)
            self.con.execute("COMMIT")
        except Exception:
            self.con.execute("ROLLBACK")
            raise
        self.rows = []
        self.last = time.monotonic()


def scan_root(
    con: duckdb.DuckDBPyConnection,
    root: str | bytes,
    *,
    volume: str | None = None,
    workers: int | None = None,
    rehash: bool = False,
    on_total: Callable[[int, int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    """Scan one root into the index; incremental unless ``rehash``.

    ``on_total(files, bytes)`` is called once the walk knows the work;
    ``on_progress(files, bytes)`` after each file read.
    """
    broot = os.fsencode(root)
    if not os.path.lexists(broot):
        raise InputError(f"root {display_path(broot)} does not exist")
    broot = os.path.abspath(broot).rstrip(b"/") or b"/"
    sroot = display_path(broot)
    volume = volume or display_path(os.path.basename(broot)) or sroot
    started = time.monotonic()
    scan_id = run(con, "ops/scan_start", {"root": sroot, "volume": volume, "rehash": rehash,
                                          "version": __version__}).fetchone()[0]
    res = ScanResult(sroot, volume, scan_id)
    known = {
        r[0]: (r[1], r[2], r[3])
        for r in run(con, "ops/known_files", {"root": sroot, "prefix": sroot.rstrip("/") + "/"}).fetchall()
    }
    writer = _Writer(con, scan_id, volume, sroot, known)
    n_workers = workers or os.cpu_count() or 1
    # On a first scan or a rehash the pool will be needed: start it while the walk runs.
    starter = _PoolStarter(n_workers) if n_workers > 1 and (rehash or not known) else None
    todo: list[bytes] = []
    todo_bytes = 0
    seen: set[str] = set()
    for e in walk(broot):
        key = display_path(e.path)
        seen.add(key)
        old = known.get(key)
        if e.status != "ok":
            if old is None or old[2] != e.status:
                res.new += old is None
                res.changed += old is not None
                writer.add({"path_bytes": e.path, "size": e.size, "mtime_ns": e.mtime_ns,
                            "status": e.status, "reason": e.reason, "detail": e.detail})
            else:
                res.unchanged += 1
            continue
        if (not rehash and old is not None and old[0] == e.size and old[1] == e.mtime_ns
                and old[2] not in ("missing", "unreadable", "skipped")):
            res.unchanged += 1
            continue
        res.new += old is None
        res.changed += old is not None
        todo.append(e.path)
        todo_bytes += e.size
    if on_total:
        on_total(len(todo), todo_bytes)
    if starter is None and n_workers > 1 and (len(todo) >= 64 or todo_bytes >= (2 << 30)):
        starter = _PoolStarter(n_workers)
    try:
        for row in _read_all(todo, n_workers, todo_bytes, starter):
            res.files_read += 1
            res.bytes_read += row.get("size") or 0
            writer.add(row)
            if on_progress:
                on_progress(1, row.get("size") or 0)
    finally:
        if starter is not None:
            starter.close()
    writer.flush()
    gone = [p for p, v in known.items() if p not in seen and v[2] != "missing"]
    if gone:
        con.execute("BEGIN TRANSACTION")
        run(con, "ops/mark_missing", {"paths": gone, "scan_id": scan_id})
        con.execute("COMMIT")
    res.missing = len(gone)
    res.seconds = time.monotonic() - started
    run(con, "ops/scan_finish", {"new": res.new, "changed": res.changed, "unchanged": res.unchanged,
                                 "missing": res.missing, "bytes_read": res.bytes_read, "scan_id": scan_id})
    res.statuses = {r[0]: r[1] for r in run(con, "ops/status_counts").fetchall()}
    return res


def _chunks(items: list[bytes], size: int) -> Iterable[list[bytes]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _PoolStarter:
    """Start the worker pool in the background while the walk runs (it costs ~0.2 s)."""

    def __init__(self, workers: int) -> None:
        import threading

        self.pool: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._start, args=(workers,), daemon=True)
        self.thread.start()

    def _start(self, workers: int) -> None:
        try:
            # forkserver: workers are forked from a clean process, never from one
            # holding DuckDB's threads and locks.
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["pacscopy.fileread"])
            self.pool = ctx.Pool(workers)
        except BaseException as e:  # reported when the pool is used
            self.error = e

    def get(self) -> Any:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.pool

    def close(self) -> None:
        self.thread.join()
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def _read_all(paths: list[bytes], workers: int, nbytes: int, starter: _PoolStarter | None) -> Iterator[dict[str, Any]]:
    # A pool is worth its start-up for many files or for much data.
    if starter is None or (len(paths) < 64 and nbytes < (2 << 30)) or len(paths) < 2:
        for p in paths:
            yield read_and_inspect(p)
        return
    chunk = max(1, min(32, len(paths) // (workers * 8) or 1))
    if nbytes // max(len(paths), 1) > (4 << 20):
        chunk = 1  # big files: hand them out one by one to keep both cores busy
    yield from (row for rows in starter.get().imap_unordered(inspect_many, _chunks(paths, chunk)) for row in rows)
