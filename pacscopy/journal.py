"""A long run's journal, and its merge into the index exactly once.

A send does not hold the index while it runs. It appends what it records to
its own journal, ``<index>.run/journal-<name>.jsonl`` (owner-only JSON lines,
one per flush, ``fsync``'d before the flush returns), holding an ``flock`` on
it while it lives. Every second or so it tries to open the index without
waiting and merges the lines not merged yet, in ONE transaction together with
the offset reached (table ``journal_merges``): a line is merged exactly once,
whatever process is killed at whatever moment. When the index is busy (a long
query, a ``duckdb`` session), the send just keeps journaling.

Whoever opens the index read-write next merges the journals whose writer is
gone (their ``flock`` is free), then removes them. A last line torn by a kill
during its write has no newline: it is never merged (those attempts are simply
sent again by the next run, as an attempt in flight always was).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from pacscopy.errors import IndexBusyError, PacscopyError
from pacscopy.index import insert_columns, open_index, run, transaction
from pacscopy.runfolder import Running, read_rate, run_dir, running_sends
from pacscopy.send import status_cache
from pacscopy.send.status_counts import keeping

log = logging.getLogger(__name__)

#: Seconds between a live journal's merges into the index (when the index is free).
MERGE_EVERY = 1.0

#: Bytes of journal merged per transaction at most (a long dead journal is merged in several).
MERGE_CHUNK = 32 << 20


def _default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"cannot journal a {type(value).__name__}")


class Journal:
    """An append-only journal file this process writes and holds (``flock``) while it lives."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.broken: str | None = None

    @classmethod
    def create(cls, index_path: str, name: str) -> Journal:
        """A new journal ``journal-<name>.jsonl``, locked before it is visible under its name."""
        d = run_dir(index_path)
        path = d / f"journal-{name}.jsonl"
        tmp = d / f".journal-{name}.jsonl.new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(tmp, path)
        _fsync_dir(d)
        return cls(path, fd)

    def append(self, kind: str, **payload: Any) -> None:
        """Append one line and fsync it: when this returns, the line survives kill -9 and power loss."""
        if self.broken:
            raise PacscopyError(f"journal {self.path} cannot be written ({self.broken}): the send stopped; "
                                "what was recorded before is kept")
        data = (json.dumps({"k": kind, **payload}, default=_default, separators=(",", ":")) + "\n").encode()
        try:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
            os.fsync(self.fd)
        except OSError as e:
            # a partial line now lacks its newline; no later line may be glued onto it
            self.broken = e.strerror or str(e)
            raise PacscopyError(f"journal {self.path} cannot be written: {self.broken}; the send stopped, what "
                                "was recorded before is kept") from None

    def close(self) -> None:
        """Release the journal (its flock): from now on anyone may merge and remove it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: The kinds of journal lines: a send's, and a verify's (``verifications``, ``verify_finish``).
KINDS = ("start", "transfers", "source_changed", "finish", "verifications", "verify_finish")
#: The kinds that end a journal's run.
FINISHES = ("finish", "verify_finish")


#: The kinds of lines that change instances' final states (status's kept figures follow them).
KEYED = ("transfers", "verifications")


def record_transfers(con: duckdb.DuckDBPyConnection, name: str, cols: dict[str, list[Any]], run_id: int,
                     target: str) -> None:
    """Write a batch of C-STORE attempts of run ``run_id`` with the SQL file ``name`` (one list per column),
    and add them to the run's totals so far (``send_runs.recorded_*``, what status shows of the run)."""
    insert_columns(con, name, cols, run_id=run_id, target=target)
    run(con, "ops/send/run_recorded", {"run_id": run_id, "outcome": list(cols["outcome"]),
                                         "bytes": list(cols["bytes"]), "finished": list(cols["finished"])})


def _apply(con: duckdb.DuckDBPyConnection, line: dict[str, Any]) -> None:
    kind = line["k"]
    if kind == "transfers":
        record_transfers(con, "ops/send/merge_transfers", line["cols"], line["run_id"], line["target"])
    elif kind == "source_changed":
        insert_columns(con, "ops/send/insert_source_changed", line["cols"])
    elif kind == "finish":
        run(con, "ops/send/send_finish", line["params"])
    elif kind == "verifications":
        insert_columns(con, "ops/verify/merge_verifications", line["cols"], target=line["target"],
                       mode=line["mode"])
    elif kind == "verify_finish":
        run(con, "ops/verify/verify_finish", line["params"])


def _apply_all(con: duckdb.DuckDBPyConnection, lines: list[dict[str, Any]]) -> None:
    """Apply a chunk's lines, keeping status's figures current with ONE before/after count per target
    for the whole chunk (a keyed count reads whole tables: once per merge, not once per line)."""
    targets: dict[str, list[str]] = {}
    for line in lines:
        if line["k"] in KEYED:
            targets.setdefault(line["target"], []).extend(line["cols"]["sop_instance_uid"])
    if len(targets) > 1:  # not a journal pacscopy writes (one run, one target): line by line
        for line in lines:
            if line["k"] in KEYED:
                with keeping(con, line["target"], line["cols"]["sop_instance_uid"]):
                    _apply(con, line)
            else:
                _apply(con, line)
        return
    if not targets:
        for line in lines:
            _apply(con, line)
        return
    ((target, sops),) = targets.items()
    with keeping(con, target, sops):  # status's figures stay current
        for line in lines:
            _apply(con, line)


def merge(con: duckdb.DuckDBPyConnection, path: Path, *, chunks: int | None = None) -> tuple[int, bool]:
    """Merge the whole lines of journal ``path`` not merged yet; return (lines merged, whether it is damaged).

    Each chunk is one transaction with its ``journal_merges`` offset. A line
    that does not parse ends the merge before it (the journal is then damaged:
    it can only be a line torn by a crash, which nothing follows). ``chunks``:
    stop after that many (a live send's merge: the rest at its next merge).
    """
    total, _, damaged = merge_some(con, path, chunks)
    return total, damaged


def merge_some(con: duckdb.DuckDBPyConnection, path: Path, chunks: int | None) -> tuple[int, bool, bool]:
    """:func:`merge`, also saying whether lines are left (``chunks`` were merged and the journal holds more)."""
    total = done = 0
    while True:
        n, more, damaged = _merge_chunk(con, path)
        total += n
        done += 1
        if damaged or not more or (chunks is not None and done >= chunks):
            return total, more and not damaged, damaged


def _merge_chunk(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, bool, bool]:
    with transaction(con):
        row = run(con, "ops/send/journal_offset", {"journal": path.name}).fetchone()
        offset, lines = (int(row[0]), int(row[1])) if row else (0, 0)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(MERGE_CHUNK)
        except FileNotFoundError:
            return 0, False, False
        meta: dict[str, Any] = {}
        finished = damaged = False
        merged = used = 0
        chunk: list[dict[str, Any]] = []
        for raw in data.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break  # torn, or cut by the chunk: not (yet) a line
            try:
                line = json.loads(raw)
                if line["k"] not in KINDS:
                    raise ValueError(line["k"])
            except (ValueError, KeyError, TypeError):
                log.warning("journal %s: damaged line after byte %d; the lines before it are merged",
                            path, offset + used)
                damaged = True
                break
            if line["k"] == "start":
                meta = line
            chunk.append(line)
            finished = finished or line["k"] in FINISHES
            merged += 1
            used += len(raw)
        if not used:
            return 0, False, damaged
        _apply_all(con, chunk)
        run(con, "ops/send/journal_merged", {
            "journal": path.name, "run_id": meta.get("run_id"), "target": meta.get("target"),
            "pid": meta.get("pid"), "host": meta.get("host"), "merged_bytes": offset + used,
            "merged_lines": lines + merged, "merged_by": os.getpid(), "finished": finished})
    return merged, len(data) == MERGE_CHUNK, damaged


@contextmanager
def _if_dead(path: Path) -> Iterator[bool]:
    """Whether the journal's writer is gone (its flock is free); held locked by us meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class Merger:
    """Merges one live journal into the index from a thread of its own, when the index is free.

    The thread never waits for the index (a busy index is tried again later) and
    merges at most every ``every`` seconds, and never more than a tenth of the
    time (ten times the latest merge's duration: a slow disk, a busy machine),
    so that the process writing the journal is never held up by a merge. Each of
    its merges takes in one chunk (:data:`MERGE_CHUNK`) at most and lets the
    index go: a backlog (journaled while a long reader held the index) is merged
    chunk by chunk, every ``every`` seconds, and a ``status`` or ``query`` gets in
    between. The last merge (:meth:`try_merge` with ``whole``) takes in the rest.
    :meth:`noted` (after each append) starts the thread; :meth:`stop` ends it. With ``publish`` (a
    send's target), each merge also publishes the target's figures for ``status`` while one looks
    (:func:`pacscopy.send.status_cache.publish`).
    What stopped the thread (a merge that failed) is in :attr:`error`.
    """

    def __init__(self, index_path: str, journal: Journal, every: float, publish: str | None = None) -> None:
        self.index_path = index_path
        self.journal = journal
        self.every = every
        self.publish = publish  # a send's target: its figures published for status after each merge
        self.appended = 0  # lines appended, as told by noted()
        self.merged_upto = 0  # ... of which the latest merge took in
        self.last_try = time.monotonic()
        self.last_cost = 0.0  # seconds the latest merge took
        self.merges = 0  # successful merges
        self.busy = 0  # merges skipped because another process held the index
        self.behind = False  # the latest merge left whole chunks for the next one
        self.error: BaseException | None = None
        self._lock = threading.Lock()  # one merge at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def dirty(self) -> bool:
        """Whether lines were appended since the latest merge began."""
        return self.behind or self.appended > self.merged_upto

    def noted(self, lines: int = 1) -> None:
        """``lines`` were appended to the journal; start the thread (first call: the index must be closed by now)."""
        self.appended += lines
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._loop, name="pacscopy-merge", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(min(0.2, self.every or 0.2)):
            pause = self.every if self.behind else max(self.every, 10 * self.last_cost)
            if self.dirty and time.monotonic() - self.last_try >= pause:
                try:
                    self.try_merge(wait=0.0, whole=False)
                except BaseException as e:  # noqa: BLE001 - the owner raises it (see error)
                    self.error = e
                    return

    def stop(self) -> None:
        """End the thread (after the merge under way, if any)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def try_merge(self, wait: float, whole: bool = True) -> bool:
        """Merge the journal (all of it, or with ``whole`` false one chunk) if the index can be had within
        ``wait`` seconds; whether it was."""
        with self._lock:
            upto = self.appended
            t0 = self.last_try = time.monotonic()
            try:
                con = open_index(self.index_path, wait=wait, lean=True)
            except IndexBusyError:
                self.busy += 1
                return False
            try:
                _, self.behind, _ = merge_some(con, self.journal.path, None if whole else 1)
                if self.publish is not None:
                    status_cache.publish_if_wanted(con, self.index_path, self.publish, journal_name(self.journal.path))
            finally:
                con.close()
            self.last_cost = time.monotonic() - t0
            self.merges += 1
            if not self.behind:
                self.merged_upto = upto
            return True


def dead_journals(index_path: str) -> list[Path]:
    """Journals in the run folder whose writer is gone (merged by the next read-write open)."""
    d = run_dir(index_path, create=False)
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("journal-*.jsonl")):
        with _if_dead(p) as dead:
            if dead:
                out.append(p)
    return out


def merge_dead(con: duckdb.DuckDBPyConnection, index_path: str) -> int:
    """Merge, then remove, every journal whose writer is gone (and its send's spool); return lines merged."""
    d = run_dir(index_path, create=False)
    if not d.is_dir():
        return 0
    total = 0
    for p in sorted(d.glob("journal-*.jsonl")):
        with _if_dead(p) as dead:
            if not dead:
                continue
            try:
                n, damaged = merge(con, p)
            except duckdb.Error as e:
                # never let one journal block every command: set it aside, loudly
                log.warning("journal %s cannot be merged (%s): set aside as %s.unmergeable; the lines merged "
                            "before stay", p, str(e).splitlines()[0], p.name)
                p.rename(p.with_name(p.name + ".unmergeable"))
                continue
            total += n
            log.info("merged %d lines of %s, whose writer is gone", n, p.name)
            if damaged:  # kept for a look, out of the way of the next merges
                p.rename(p.with_name(p.name + ".damaged"))
            else:
                remove(p)
    return total


def journal_name(journal: Path) -> str:
    """The NAME of ``journal-NAME.jsonl``: its run's other files in the run folder are named by it too."""
    return journal.name[len("journal-"):-len(".jsonl")]


def remove(journal: Path) -> None:
    """Remove a merged journal and the other files of its run (spool, rate, published figures)."""
    stem = journal_name(journal)
    (journal.parent / f"spool-{stem}.parquet").unlink(missing_ok=True)
    (journal.parent / f"rate-{stem}.json").unlink(missing_ok=True)
    (journal.parent / f"live-{stem}.json").unlink(missing_ok=True)
    journal.unlink(missing_ok=True)


def writer_record(run_id: int, target: str) -> dict[str, Any]:
    """The journal's first line: which run it records, and who writes it."""
    return {"run_id": run_id, "target": target, "pid": os.getpid(), "host": socket.gethostname(),
            "started": dt.datetime.now().isoformat(timespec="seconds")}


def running(con: duckdb.DuckDBPyConnection, index_path: str) -> list[Running]:
    """The sends running from the index (:func:`pacscopy.runfolder.running_sends`) with their latest merge
    and their rate (:func:`read_rate`)."""
    out = []
    for s in running_sends(index_path):
        row = run(con, "ops/send/journal_as_of", {"journal": f"journal-{s.journal}.jsonl"}).fetchone() \
            if s.journal else None
        out.append(Running(s, row[0] if row else None, read_rate(index_path, s.journal)))
    return out
