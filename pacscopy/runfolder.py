"""The run folder ``<index>.run/``: which pacscopy process holds what, beside the index.

DuckDB lets one process write an index file at a time, so pacscopy processes
hold the index only for short stretches (:func:`pacscopy.index.open_index`).
What they hold for longer lives here, owner-only (0700 folder, 0600 files):

- ``proc-<pid>.json``: one record per pacscopy process that opened the index
  (pid, host, command, started), so that a lock conflict, whose DuckDB message
  names only a PID, can say which pacscopy command holds the index;
- ``send-<target>.lock``: held (``flock``) by the one send to that target; its
  content says who (pid, host, since, run id); ``verify-<mode>-<target>.lock``
  likewise for the one verify of a target in a mode, ``scan-<root>.lock`` for
  the one scan of a root;
- journals and spool files of running sends (:mod:`pacscopy.journal`).

A record is stale when its process is gone (or the PID now belongs to another
process: the start time is recorded too); stale records are ignored and
removed when seen. A lock held with ``flock`` is released by the kernel when
its process dies, even by kill -9.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import socket
import sys
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pacscopy.errors import IndexFileError, TargetBusyError

#: The index used when no ``--index`` is given and ``$PACSCOPY_INDEX`` is not set.
DEFAULT_INDEX = "pacscopy.duckdb"

#: What this process is, as recorded (set by the CLI: the command without its values, no patient data).
COMMAND: str | None = None


def default_index_path() -> str:
    """``$PACSCOPY_INDEX``, else :data:`DEFAULT_INDEX` (here, not in :mod:`pacscopy.index`: no DuckDB needed)."""
    return os.environ.get("PACSCOPY_INDEX") or DEFAULT_INDEX


#: Called once per :func:`pacscopy.index.open_index` that has to wait, with who holds the index; the CLI
#: says it on stderr (set here, not in :mod:`pacscopy.index`: the CLI imports DuckDB only when a command needs it).
on_lock_wait: Callable[[str], None] | None = None


def run_dir(index_path: str, create: bool = True) -> Path:
    """``<index>.run/``, created owner-only when ``create``."""
    d = Path(os.path.abspath(index_path) + ".run")
    if create and not d.is_dir():
        if not d.parent.is_dir():  # the same words as opening the index would use
            raise IndexFileError(f"no index at {index_path}: the folder {d.parent} does not exist")
        try:
            d.mkdir(mode=0o700, exist_ok=True)
        except OSError as e:
            raise IndexFileError(f"cannot create the run folder {d} beside the index: {e.strerror}") from None
    return d


def _proc_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat``), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def command() -> str:
    """This process's command for the records: the subcommand and its target, never other values."""
    if COMMAND:
        return COMMAND
    args = sys.argv[1:]
    words = ["pacscopy", *args[:1]]
    if "--target" in args[:-1]:
        words += ["--target", args[args.index("--target") + 1]]
    return " ".join(words)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (mode 0600) through a temporary file and a rename: readers never see half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


_registered: set[str] = set()


def register(index_path: str) -> None:
    """Record this process in the run folder (once per process and index)."""
    key = os.path.abspath(index_path)
    if key in _registered:
        return
    try:
        d = run_dir(index_path)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": command(),
                  "started": dt.datetime.now().isoformat(timespec="seconds"), "proc_start": _proc_start(os.getpid())}
        write_private(d / f"proc-{os.getpid()}.json", json.dumps(record))
        for p in d.glob("proc-*.json"):  # stale records of processes gone
            m = re.match(r"proc-(\d+)\.json$", p.name)
            if m and int(m.group(1)) != os.getpid() and _stale(p):
                p.unlink(missing_ok=True)
    except OSError:
        return  # a read-only folder: the records are a courtesy, the index works without them
    _registered.add(key)


def _stale(p: Path) -> bool:
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError):
        return True
    return rec.get("host") == socket.gethostname() and _proc_start(int(rec["pid"])) != rec.get("proc_start")


def describe_pid(index_path: str, pid: int | None) -> str:
    """Who process ``pid`` is, from its record: 'pacscopy send --target X (pid N on H since T)'."""
    if pid is None:
        return "another process"
    p = run_dir(index_path, create=False) / f"proc-{pid}.json"
    try:
        rec = json.loads(p.read_text())
        if not _stale(p):
            return f"'{rec['command']}' (pid {pid} on {rec['host']} since {rec['started']})"
    except (OSError, ValueError, KeyError):
        pass
    exe = ""
    try:
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        pass
    return f"process {pid}" + (f" ({exe}; not a pacscopy command, e.g. a duckdb session)" if exe else "")


# -- one send per target -------------------------------------------------------------

def _lock_file(d: Path, kind: str, key: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
    if len(name) > 120:  # a deep root: keep the name short, and unique by a hash of the whole key
        import xxhash

        name = name[-80:] + "-" + xxhash.xxh3_64_hexdigest(key.encode())
    return d / f"{kind}-{name}.lock"


@dataclass
class TargetLock:
    """The flock'd lock file of the one send to a target; released by :meth:`release` or the process's death."""

    path: Path
    fd: int

    def update(self, **info: Any) -> None:
        """Rewrite the record in the lock file (e.g. once the run id is known)."""
        rec = _read_lock(self.path) or {}
        rec.update(info)
        data = json.dumps(rec).encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd >= 0:
            try:
                self.path.unlink(missing_ok=True)
            finally:
                os.close(self.fd)
                self.fd = -1


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        rec = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def lock_target(index_path: str, target: str) -> TargetLock:
    """Take the lock of sends to ``target`` from this index, or refuse naming who holds it (:class:`TargetBusyError`)."""
    return take_lock(index_path, "send", target, f"a send to {target} from index {index_path}",
                     "one send per target; wait for it to end or stop it (Ctrl-C)", target=target)


def take_lock(index_path: str, kind: str, key: str, what: str, rule: str, **info: Any) -> TargetLock:
    """Take the run folder's lock ``<kind>-<key>.lock``, or refuse: '<what> is already running (who): <rule>'.

    Held with ``flock`` until :meth:`TargetLock.release` or the process's death (even kill -9).
    """
    d = run_dir(index_path)
    path = _lock_file(d, kind, key)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy_error(path, what, rule) from None
        # the file may have been released and removed between open and flock: lock the one in place
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    lock = TargetLock(path, fd)
    os.ftruncate(fd, 0)
    lock.update(pid=os.getpid(), host=socket.gethostname(), since=dt.datetime.now().isoformat(timespec="seconds"),
                command=command(), **info)
    return lock


def busy_error(path: Path, what: str, rule: str) -> TargetBusyError:
    """'<what> is already running (who holds ``path``): <rule>'."""
    rec = _read_lock(path) or {}
    who = (f"pid {rec.get('pid')} on {rec.get('host')} since {rec.get('since')}"
           + (f", run {rec['run_id']}" if rec.get("run_id") else "")) if rec else "another process"
    return TargetBusyError(f"{what} is already running ({who}): {rule}")


@contextmanager
def serialised(index_path: str, name: str) -> Iterator[None]:
    """Inside the block, no other process is inside a block of the same ``name`` for this index
    (``<name>.guard`` in the run folder, ``flock`` waited for): for a take-then-look step that two
    processes must not interleave."""
    fd = os.open(run_dir(index_path) / f"{name}.guard", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _held(path: Path) -> bool:
    """Whether a process (this one too) holds the lock file ``path``, without taking or touching it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # no lock file (or released and removed): nobody holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def held_locks(index_path: str, kind: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The ``<kind>-*.lock`` files of the run folder held now (by this process too), with their records."""
    d = run_dir(index_path, create=False)
    for path in sorted(d.glob(f"{kind}-*.lock")):
        if _held(path):
            yield path, _read_lock(path) or {}


def refuse_if_running(index_path: str, target: str) -> None:
    """Refuse now (:class:`TargetBusyError`, as :func:`lock_target` would) if a send to ``target`` from this index
    runs, without taking or touching its lock: a second send is refused before it waits for the index."""
    path = _lock_file(run_dir(index_path, create=False), "send", target)
    if _held(path):
        raise busy_error(path, f"a send to {target} from index {index_path}",
                         "one send per target; wait for it to end or stop it (Ctrl-C)")


@dataclass
class RunningSend:
    target: str
    pid: int | None
    host: str | None
    since: str | None
    run_id: int | None
    journal: str | None

    def state(self) -> str:
        """'is running (run 3' once its run is recorded, else 'is starting (no run recorded yet': a send
        holds its lock from its start, and records its run after it has opened the index and counted its queue."""
        return f"is running (run {self.run_id}" if self.run_id else "is starting (no run recorded yet"


def running_sends(index_path: str) -> list[RunningSend]:
    """The sends running from this index now (their target lock is held), read without disturbing them."""
    out: list[RunningSend] = []
    for p, rec in held_locks(index_path, "send"):  # held: a lock nobody holds is a send that ended
        out.append(RunningSend(rec.get("target", p.stem[5:]), rec.get("pid"), rec.get("host"), rec.get("since"),
                               rec.get("run_id"), rec.get("journal")))
    return out


# -- what a running send says of itself: its rate -----------------------------------

@dataclass
class Rate:
    """A running send's rate, as it last wrote it (``<index>.run/rate-RUN-PID.json``, every few seconds)."""

    at: dt.datetime  # when it was written
    seconds: float  # the span it is measured over: the last minute, or since the send's start
    instances_per_s: float
    mb_per_s: float
    stored: int  # instances stored by the run so far (with warnings), including those not merged yet

    def line(self) -> str:
        """'its rate over the last minute: 12.3 instances/s, 4.5 MB/s (as of 10:20:30)'."""
        span = "the last minute" if self.seconds >= 59 else f"the last {self.seconds:.0f} s (since its start)"
        return (f"its rate over {span}: {self.instances_per_s:.1f} instances/s, {self.mb_per_s:.1f} MB/s "
                f"(as of {self.at:%H:%M:%S}; {self.stored} stored by this run)")

    def finish(self, left: int) -> dt.datetime:
        """When ``left`` instances are sent at this rate (from when it was measured)."""
        return self.at + dt.timedelta(seconds=left / self.instances_per_s)


@dataclass
class Running:
    """A send running from the index now, and how current the index's figures of it are."""

    send: RunningSend
    as_of: dt.datetime | None  # its latest merge (None: nothing merged yet; as of its start)
    rate: Rate | None = None  # its rate over the last minute (None: not written yet)
    live: bool = False  # the figures were read from what the send published, not from the index


def read_rate(index_path: str, journal: str | None) -> Rate | None:
    """The rate file of the send whose journal is ``journal-<journal>.jsonl`` (None: none, or unreadable)."""
    if not journal:
        return None
    try:
        rec = json.loads((run_dir(index_path, create=False) / f"rate-{journal}.json").read_text())
        return Rate(dt.datetime.fromisoformat(rec["at"]), float(rec["seconds"]), float(rec["instances_per_s"]),
                    float(rec["bytes_per_s"]) / 1e6, int(rec["stored"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- who waits for the index ---------------------------------------------------------

#: The records ``wait-<pid>.json`` this process has written and not yet removed.
_waiting: set[Path] = set()


def want(index_path: str) -> None:
    """Say in the run folder that this process waits for the index (``wait-<pid>.json``), until :func:`got`.

    Written when an open finds the index held (:func:`pacscopy.index.open_index`): a long holder
    that can let go — the scan's writer — lets go only for such a process, and otherwise keeps the
    index open (closing it checkpoints it, which costs more as the index grows).
    """
    d = run_dir(index_path, create=False)
    p = d / f"wait-{os.getpid()}.json"
    if p in _waiting:
        return
    rec = {"pid": os.getpid(), "host": socket.gethostname(), "command": command(),
           "since": dt.datetime.now().isoformat(timespec="seconds"), "proc_start": _proc_start(os.getpid())}
    try:
        write_private(p, json.dumps(rec))
    except OSError:
        return  # no run folder (yet), read-only: the holder simply does not know
    if not _waiting:
        import atexit

        atexit.register(_got_all)
    _waiting.add(p)


def got(index_path: str) -> None:
    """This process no longer waits for the index (it has it, or gave up): remove its record."""
    p = run_dir(index_path, create=False) / f"wait-{os.getpid()}.json"
    if p in _waiting:
        _waiting.discard(p)
        p.unlink(missing_ok=True)


def _got_all() -> None:
    for p in list(_waiting):
        p.unlink(missing_ok=True)
    _waiting.clear()


def waiting(index_path: str) -> list[int]:
    """The PIDs of the other live processes waiting for the index now (records of dead ones are removed)."""
    d = run_dir(index_path, create=False)
    try:
        names = os.listdir(d)
    except OSError:
        return []
    out = []
    for name in names:
        m = re.match(r"wait-(\d+)\.json$", name)
        if m is None or int(m.group(1)) == os.getpid():
            continue
        p = d / name
        if _stale(p):
            p.unlink(missing_ok=True)
        else:
            out.append(int(m.group(1)))
    return out
