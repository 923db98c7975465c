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

While a send runs, its figures move every second or so (each journal merge keeps them current in
the index), and a ``status`` polled every second would pay each time for a whole process that
imports DuckDB and opens the index. So the send publishes them instead (:func:`publish`), as long
as a ``status`` asked in the last :data:`WANTED_FOR` seconds (:func:`want_live`): after each merge,
with the index still held, its merge thread writes ``<index>.run/live-<journal>.json`` (owner-only)
with its target's kept figures, its latest run, when its journal was merged last, and the index's
stamp taken after a checkpoint, i.e. as the index file stays once the merge lets go of it.
``status`` shows those (:func:`live`) without importing DuckDB or opening the index only while that
send still runs (its target lock is held) and the index is still byte for byte in the stamped state:
then the index itself would show exactly the same figures. Any other write since (a check, a
decide, another send's merge, status keeping its own count) changes the stamp, and status reads the
index as before. The figures say when they were last kept current ("as of HH:MM:SS, its latest
merge (from the running send)").
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import duckdb

    from pacscopy.runfolder import Running, RunningSend
    from pacscopy.send.progress import SendProgress

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


# -- a running send's figures, published for status ----------------------------------

#: Seconds a status's wish (``<index>.run/status-wanted``, touched by :func:`want_live`) keeps the
#: running sends publishing their figures after every merge (nobody looking: nothing published).
WANTED_FOR = 60.0

_LIVE_VERSION = 1


class Published(NamedTuple):
    """The instances in one final state, as a send published them."""

    instances: int
    bytes: int
    warnings: int


def _wanted_file(index_path: str) -> Path:
    from pacscopy.runfolder import run_dir

    return run_dir(index_path, create=False) / "status-wanted"


def live_file(index_path: str, journal: str) -> Path:
    """``<index>.run/live-<journal>.json``: what the send writing ``journal-<journal>.jsonl`` published."""
    from pacscopy.runfolder import run_dir

    return run_dir(index_path, create=False) / f"live-{journal}.json"


def want_live(index_path: str) -> None:
    """Ask the running sends to publish their figures after each merge, for :data:`WANTED_FOR` seconds."""
    path = _wanted_file(index_path)
    try:
        os.utime(path)
    except FileNotFoundError:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as e:
            log.debug("cannot write %s: %s", path, e)
    except OSError as e:  # a run folder we may not write: the sends just do not publish
        log.debug("cannot touch %s: %s", path, e)


def wanted(index_path: str) -> bool:
    """Whether a status asked for the running sends' figures in the last :data:`WANTED_FOR` seconds."""
    import time

    try:
        return time.time() - os.stat(_wanted_file(index_path)).st_mtime < WANTED_FOR
    except OSError:
        return False


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def publish_if_wanted(con: duckdb.DuckDBPyConnection, index_path: str, target: str, journal: str) -> None:
    """:func:`publish`, if a status asked lately (:func:`wanted`)."""
    if wanted(index_path):
        publish(con, index_path, target, journal)


def publish(con: duckdb.DuckDBPyConnection, index_path: str, target: str, journal: str) -> None:
    """Publish ``target``'s figures for status, from a send holding the index read-write: at its start once its
    queue is spooled, and after each merge (best effort: a failure only makes status read the index)."""
    import duckdb

    from pacscopy import __version__
    from pacscopy.index import run
    from pacscopy.runfolder import write_private
    from pacscopy.send import status_counts
    from pacscopy.send.queue import last_run

    path = live_file(index_path, journal)
    try:
        kept = status_counts.kept(con, target)
        last = last_run(con, target)
        merged = run(con, "ops/send/journal_as_of", {"journal": f"journal-{journal}.jsonl"}).fetchone()
        # closing would checkpoint: do it now, so that the stamp is the file as the close leaves it, taken
        # while no other process can write (this one holds the index)
        con.execute("CHECKPOINT")
        stamp = index_stamp(index_path)
        rec = {"version": _LIVE_VERSION, "pacscopy": __version__, "pid": os.getpid(), "target": target,
               "journal": journal, "stamp": stamp, "as_of": _when(merged[0] if merged else None),
               "figures": {st: [c.instances, c.bytes, c.warnings] for st, c in kept[0].items()} if kept else None,
               "figures_at": _when(kept[1]) if kept else None,
               "last_run": [last[0], _when(last[1]), _when(last[2]), last[3], last[4]] if last else None}
        write_private(path, json.dumps(rec))
    except (duckdb.Error, OSError) as e:
        log.debug("status figures not published in %s: %s", path, e)
        path.unlink(missing_ok=True)


def _read_live(index_path: str, send: RunningSend) -> dict[str, Any] | None:
    from pacscopy import __version__

    if not send.journal:
        return None
    try:
        rec = json.loads(live_file(index_path, send.journal).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("version") != _LIVE_VERSION or rec.get("pid") != send.pid \
            or rec.get("target") != send.target or rec.get("pacscopy") != __version__:
        return None  # another run's, or another pacscopy version's
    return rec


#: Seconds status waits for a running send to publish figures that hold for the index now (it publishes
#: after each merge, about every second; at its start, once its queue is spooled) before reading the index.
LIVE_WAIT = 2.0

#: What :func:`_published` found: show these, read the index now, or look again shortly.
_INDEX, _AGAIN = "index", "again"


def live(index_path: str, target: str, wait: float = LIVE_WAIT) -> tuple[SendProgress, list[Running]] | None:
    """``target``'s figures and the running sends, as the running send to ``target`` published them, if
    the index is still exactly as it was then (its stamp); None: read the index.

    None at once when no send to ``target`` runs, or its figures are not kept (the first status counts
    them); after ``wait`` seconds when nothing it published holds for the index now (its start is
    under way, or another process wrote since its latest merge, which publishes again): waiting costs
    status no CPU, and the index is busy with the send's start or merge meanwhile anyway.
    """
    import time

    from pacscopy.runfolder import run_dir

    if not run_dir(index_path, create=False).is_dir():
        return None  # the index was never opened: nothing runs
    want_live(index_path)  # also when no send runs yet: one that starts within the minute publishes at once
    deadline = time.monotonic() + wait
    while True:
        found = _published(index_path, target)
        if isinstance(found, tuple):
            return found
        if found == _INDEX or time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _published(index_path: str, target: str) -> tuple[SendProgress, list[Running]] | str:
    """:func:`live`'s one look: the figures, or :data:`_INDEX` (read the index) or :data:`_AGAIN` (look again)."""
    import datetime as dt

    from pacscopy.runfolder import Running, read_rate, running_sends
    from pacscopy.send.progress import progress_from

    def when(value: str | None) -> dt.datetime | None:
        return dt.datetime.fromisoformat(value) if value else None

    sends = running_sends(index_path)
    if not any(s.target == target for s in sends):
        return _INDEX
    stamp = index_stamp(index_path)
    progress: SendProgress | None = None
    out = []
    try:
        for s in sends:
            rec = _read_live(index_path, s)
            if rec is None:
                return _AGAIN  # not published yet (a send's start), or by another pacscopy: see the deadline
            out.append(Running(s, when(rec["as_of"]), read_rate(index_path, s.journal), live=True))
            if s.target != target:
                continue
            if rec["figures"] is None:
                return _INDEX  # not kept: the first status counts them
            if rec["stamp"] != stamp:
                return _AGAIN  # the index changed since: the send's next merge publishes again
            last = rec["last_run"]
            counts = {st: Published(*f) for st, f in rec["figures"].items()}
            progress = progress_from(counts, (last[0], when(last[1]), when(last[2]), last[3], last[4]) if last else None,
                                     as_of=when(rec["figures_at"]))
    except (KeyError, TypeError, ValueError) as e:
        log.debug("published status figures unreadable (%s): reading the index", e)
        return _INDEX
    return (progress, out) if progress is not None else _INDEX
