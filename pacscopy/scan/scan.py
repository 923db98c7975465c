"""Scan restored archive volumes into the index.

A walk (``lstat`` only, never following links, never opening anything but
regular files) finds the work; as it goes, lean worker processes
(:mod:`pacscopy.scan.pool`) read each changed file once, hashing and parsing
the same bytes, and the calling process alone writes batches to DuckDB.
Nothing here prints: progress goes to a callback, the result is a
:class:`ScanResult`.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from pacscopy import __version__
from pacscopy.errors import IndexBusyError, InputError
from pacscopy.index import default_index_path, fetch, insert_frame, open_index, run, run_script, transaction
from pacscopy import attrdigest
from pacscopy.scan.fileread import ROW_COLUMNS, SIDE_COLUMNS, display_path, entry_row, read_and_inspect
from pacscopy.scan.known import ENTRY_CODES, READ, Gone, Known, find_rows
from pacscopy.scan.pool import IO_BYTES, IO_DEPTH, ReadAhead, Workers, scan_workers
from pacscopy.send.status_counts import figures_kept, keeping_if_kept

if TYPE_CHECKING:
    from concurrent.futures import Future

    import duckdb

    from pacscopy.scan.fileread import Row

log = logging.getLogger(__name__)

__all__ = ["COLUMNS", "ScanResult", "ScanRun", "StatusCount", "begin_scan", "display_path", "read_and_inspect", "scan", "scan_root", "walk"]

#: Columns written for every file, in the order of a result row (volume and root are per scan).
COLUMNS = ROW_COLUMNS
#: The writer keeps the index open while no other process waits for it, and lets go when one
#: does ("lock-hopping", README "Concurrent use"): a process that finds the index held says so in
#: the run folder (:func:`pacscopy.runfolder.want`), the writer looks for such records every
#: WAITERS_EVERY seconds, closes the index, and takes it back once none waits. Closing checkpoints
#: the index, which costs more as the index grows (measured on 2 cores: 0.05 s on a fresh index,
#: 0.4-0.8 s from 100,000 files on): hopping every second made a scan of 200,000 files take 60 s
#: instead of 33 s, so a scan alone never hops. While held, the rows read are written in one
#: transaction each once HOP_SECONDS old or HOP_ROWS many; rows read but not yet written are lost
#: on kill -9 and simply read again by the next scan (their files are not in the index yet, or
#: still with their old size and mtime).
HOP_SECONDS = 1.0
HOP_ROWS = 20_000
WAITERS_EVERY = 0.1
#: Waiters are let in at most once per this many times the last hop's own cost (closing the
#: index and opening it again) after the writer took it back: a status polled every second
#: beside a scan costs the scan at most about a twentieth of its time.
HOP_COST_FACTOR = 20
#: While another process holds the index, the writer keeps reading and buffering up to this
#: many rows, then waits for the index (bounded memory).
HOP_MAX_ROWS = 50_000
#: A batch goes to DuckDB in INSERTs of at most this many rows: converting the parameters of one
#: INSERT takes memory in proportion (measured: +306 MB for 50,000 rows at once, +99 MB in 10,000s).
INSERT_ROWS = 5_000
#: A batch replacing rows already in the index (a rescan's changed files) is written in transactions
#: of at most this many rows, with DuckDB's memory limit raised to UPSERT_MEMORY_LIMIT meanwhile
#: (unless $PACSCOPY_MEMORY_LIMIT sets one): a transaction keeps the versions of the rows it deletes
#: and the pages it changes in memory until it commits. Until schema 0033 each replaced row also
#: deleted and inserted its path in the primary key's index (5,000 rows spread over a 20 M-file index
#: did not fit the scan's 128 MB; at 50 M one 5,000-row insert took 54.5 s).
UPSERT_ROWS = 20_000
#: With status's figures kept, each transaction also moves its instances' figures, and that costs
#: passes over the books' keys whatever the batch's size (at 50 M files ~5 s a transaction: a
#: 100,000-file rescan's writes took 29.6 s in transactions of 20,000 rows, 8.1 s in one). The
#: writer then keeps one transaction open over its batches and commits it once it holds KEPT_ROWS
#: rows or is KEPT_SECONDS old, when another process waits for the index, or at the root's end.
#: The rows stay in DuckDB meanwhile, not in Python; a scan stopped before the commit leaves them
#: unwritten (the next scan reads their files again).
KEPT_ROWS = 100_000
KEPT_SECONDS = 30.0
UPSERT_MEMORY_LIMIT = "1GB"
#: Changed rows recorded for the next incremental check (``check_dirty``) at most, before the
#: scan gives up recording and the next check is a full one (also past a quarter of the index).
DIRTY_MAX = 1_000_000
#: Walked entries are compared with the index's known files in batches of at most this many
#: (:class:`pacscopy.scan.known.Known`: one vectorised lookup per batch), and at least every
#: :data:`WAITERS_EVERY` seconds. Per entry, 200,000 known: 0.57 us in batches of 1,024, 0.39 us
#: in 4,096 (a dict's pop: 0.09 us).
VISIT_BATCH = 4096
#: Files go to a worker in chunks of at most this many files or bytes.
CHUNK_FILES = 32
CHUNK_BYTES = 4 << 20
#: Worker processes start once this many files or bytes are to be read; less is read in-process.
POOL_FILES = 64
#: During the walk, ``on_walk`` is called at most this often (seconds).
WALK_REPORT_S = 0.25
POOL_BYTES = 32 << 20
#: DuckDB's memory limit for a scan (unless $PACSCOPY_MEMORY_LIMIT is set). A scan only
#: appends, upserts by primary key and counts; with the usual 1 GB DuckDB keeps ~100 MB more
#: in memory and its checkpoints peak higher (200,000 files: 281 MB -> 251 MB for the whole
#: scan). Upserts into an index of 3 million files work within it.
SCAN_MEMORY_LIMIT = "128MB"
#: DuckDB threads during a scan: one writer's inserts need no more, and the cores are the
#: workers'. A second DuckDB thread took CPU from them (20,000 x 10 KB: 1.12 s -> 1.07 s).
SCAN_DUCKDB_THREADS = 1
#: A scan's checkpoints (its commits, its hops) compact no row groups: DuckDB's vacuum moves the rows
#: after a compacted group to lower row ids, and the row ids a root's known files hold would then
#: miss; each batch found its rows again by a pass over every path (at 50 M files 7.3 s a batch: a
#: 250,000-file rescan spent 73.5 s so). The next command's checkpoint compacts them. Another
#: process's checkpoint while the scan has let go may still move rows: the scan checks every row
#: id against its path (ops/scan/upsert_find, ops/scan/gone_paths) and falls back to the path.
SCAN_VACUUM_TASKS = 0
#: Chunks handed out but not yet taken back, per worker, before the walk waits for the workers.
BACKLOG_PER_WORKER = 16
#: A scan begun before its index is open reads this many files, at most, meanwhile.
EARLY_FILES = 4096


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
    #: Files and bytes per status in the whole index after this root.
    status_counts: list[StatusCount] = field(default_factory=list)


@dataclass
class _Entry:
    path: bytes
    size: int
    mtime_ns: int
    status: str = "ok"  # ok (a regular file to read) | skipped | unreadable
    reason: str | None = None
    detail: str | None = None


#: Folders listed ahead of the walk, at most, in threads: on network storage each
#: listing (and each entry's lstat) is a round trip, and an archive has many folders.
LIST_AHEAD = 32


def walk(root: bytes, list_ahead: int = LIST_AHEAD) -> Iterator[_Entry]:
    """Every entry under ``root``, never following symlinks and never looping.

    Depth first, each folder's entries by name. The folders next in line are
    listed ahead in up to ``list_ahead`` threads (their entries lstat'ed too);
    the order and the entries are those of a plain serial walk.
    """
    try:
        st = os.lstat(root)
    except OSError as e:
        yield _Entry(root, 0, 0, "unreadable", "os_error", e.strerror)
        return
    if not stat.S_ISDIR(st.st_mode):
        yield _entry(root, st)
        return
    pool = None
    if list_ahead > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(list_ahead, thread_name_prefix="list")
    try:
        yield from _walk_tree(root, pool, list_ahead)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


#: A listed folder: its (dev, inode) and its entries with their lstat (or the error).
_Listing = tuple[tuple[int, int], list[tuple[bytes, "os.stat_result | OSError"]]]


def _list(d: bytes) -> _Listing:
    """List one folder, entries sorted by name, each lstat'ed (raises OSError if it cannot be listed)."""
    dst = os.lstat(d)
    with os.scandir(d) as it:
        entries = sorted(it, key=lambda e: e.name)
    out: list[tuple[bytes, os.stat_result | OSError]] = []
    for entry in entries:
        try:
            out.append((entry.path, entry.stat(follow_symlinks=False)))
        except OSError as err:
            out.append((entry.path, err))
    return (dst.st_dev, dst.st_ino), out


def _walk_tree(root: bytes, pool: Any, ahead: int) -> Iterator[_Entry]:
    seen_dirs: set[tuple[int, int]] = set()
    # Folders still to visit, the next on top; each with its listing once asked for.
    stack: list[tuple[bytes, Future[_Listing] | None]] = [(root, None)]
    asked = 0  # listings asked for and not yet taken

    def ask_ahead() -> None:
        nonlocal asked
        for i in range(len(stack) - 1, max(-1, len(stack) - 1 - 2 * ahead), -1):
            if asked >= ahead:
                return
            if stack[i][1] is None:
                stack[i] = (stack[i][0], pool.submit(_list, stack[i][0]))
                asked += 1

    while stack:
        d, listing = stack.pop()
        try:
            if listing is not None:
                asked -= 1
                key, entries = listing.result()
            else:
                key, entries = _list(d)
        except OSError as e:
            yield _Entry(d, 0, 0, "unreadable", "os_error", f"cannot list folder: {e.strerror}")
            continue
        if key in seen_dirs:  # bind mounts can loop even without symlinks
            yield _Entry(d, 0, 0, "skipped", "loop", "folder already visited (bind mount loop)")
            continue
        seen_dirs.add(key)
        subdirs = []
        for p, st in entries:
            if isinstance(st, OSError):
                yield _Entry(p, 0, 0, "unreadable", "os_error", st.strerror)
            elif stat.S_ISDIR(st.st_mode):
                subdirs.append(p)
            else:
                yield _entry(p, st)
        stack.extend((p, None) for p in reversed(subdirs))
        if pool is not None:
            ask_ahead()


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


class _Hop:
    """The scan's way to the index: opened for a stretch, closed when another process waits for it."""

    def __init__(self, path: str, create: bool = False) -> None:
        self.path, self.create = path, create
        self.opened = False

    def connect(self, wait: bool = True) -> duckdb.DuckDBPyConnection | None:
        """The index; ``None`` if ``wait`` is false and another process holds it.

        Waiting is :func:`pacscopy.index.open_index`'s (up to ``$PACSCOPY_LOCK_WAIT``). The first
        open checks the index; the next ones of the same scan are lean (no integrity check).
        """
        try:
            con = open_index(self.path, create=self.create, memory_limit=SCAN_MEMORY_LIMIT,
                             threads=SCAN_DUCKDB_THREADS, wait=None if wait else 0, lean=self.opened)
        except IndexBusyError:
            if wait:
                raise
            return None
        self.create, self.opened = False, True
        con.execute("SET max_vacuum_tasks = $n", {"n": SCAN_VACUUM_TASKS})
        return con

    @contextmanager
    def open(self, wait: bool = True) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """:meth:`connect`, closed when the block ends."""
        con = self.connect(wait)
        try:
            yield con
        finally:
            if con is not None:
                con.close()

    def waiting(self) -> bool:
        """Whether another process waits for the index."""
        from pacscopy.runfolder import waiting

        return bool(waiting(self.path))


def _recording(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the rows written now are recorded for the next incremental check (``check_dirty``)."""
    row = run(con, "ops/scan/dirty_recording").fetchone()
    return bool(row and row[0])


class _Writer:
    """The single writer: buffers rows and writes them in batches, one transaction each.

    The index stays open (``con``) until another process waits for it (:class:`_Hop`,
    :data:`HOP_COST_FACTOR`). A batch is staged in a temporary table and plainly inserted; only a
    batch with paths already in the index (``upserts``) pays for an upsert (ops/scan/upsert_files).
    Call :meth:`tick` often (also when no rows come), :meth:`close` at the end.
    """

    def __init__(self, index: _Hop, scan_id: int, volume: str, root: str,
                 con: duckdb.DuckDBPyConnection | None = None) -> None:
        self.index, self.scan_id, self.volume, self.root = index, scan_id, volume, root
        #: Paths of the rows buffered (or still to come) that replace rows of the index: their row ids there.
        self.upserts: dict[str, int] = {}
        self.rows: list[Row] = []
        self.con = con
        self.last = time.monotonic()
        #: When the index was last taken (opened), and what the last hop cost (closing it and taking it back).
        self.taken = self.last
        self.cost = 0.0
        self.closing = 0.0  # what the last close cost
        self.checked = 0.0  # when waiters were last looked for
        self.hops = 0
        #: The last stretch: hold the index to the end and write each chunk as it comes.
        self.final = False
        #: With status's figures kept: the transaction kept open over batches (:meth:`commit`), the
        #: rows written in it, when it began, and the instances whose rows it changed.
        self.open: ExitStack | None = None
        self.open_rows = 0
        self.open_since = 0.0
        self.open_sops: list[str] = []

    def add(self, rows: list[Row]) -> None:
        self.rows.extend(rows)
        self.tick()

    def idle(self) -> None:
        """Nothing else to do right now."""
        self.tick()

    def tick(self) -> None:
        """Let go of the index if another process waits (and a hop is due); write the batch if it is due."""
        now = time.monotonic()
        if self.con is not None and not self.final and now - self.checked >= WAITERS_EVERY:
            self.checked = now
            if now - self.taken >= HOP_COST_FACTOR * self.cost and self.index.waiting():
                self.let_go()
        if self.rows and (self.final or self.due()):
            self.flush(wait=self.final or len(self.rows) >= HOP_MAX_ROWS)
        if self.open is not None and now - self.open_since >= KEPT_SECONDS:
            self.commit()

    def due(self) -> bool:
        """Whether the rows buffered are to be written now (:data:`HOP_SECONDS`, :data:`HOP_ROWS`)."""
        return len(self.rows) >= HOP_ROWS or time.monotonic() - self.last >= HOP_SECONDS

    def let_go(self) -> None:
        """Close the index (a checkpoint) for the process waiting for it."""
        if self.con is None:
            return
        t0 = time.monotonic()
        self.commit()
        con, self.con = self.con, None
        con.close()
        self.closing = time.monotonic() - t0
        self.hops += 1

    def take(self, wait: bool = True) -> duckdb.DuckDBPyConnection | None:
        """The index, held from now on; ``None`` unless ``wait`` if another process holds it or waits for it."""
        if self.con is None:
            if not wait and self.index.waiting():
                return None  # let the waiting one in first
            t0 = time.monotonic()
            self.con = self.index.connect(wait)
            if self.con is None:
                return None
            self.taken = time.monotonic()
            if self.hops:
                self.cost = self.closing + self.taken - t0
        return self.con

    def flush(self, wait: bool = True) -> None:
        """Write the rows buffered; unless ``wait``, only if the index can be had right now."""
        if not self.rows:
            return
        con = self.take(wait)
        if con is None:  # busy: keep buffering, try again later
            self.last = time.monotonic()
            return
        self.write(con)

    def close(self) -> None:
        """Close the index if held (the rows not written stay unwritten, and so do those of a
        transaction still open: call :meth:`commit` first to keep them)."""
        self.abort()
        if self.con is not None:
            con, self.con = self.con, None
            con.close()

    def write(self, con: duckdb.DuckDBPyConnection) -> None:
        """Write the rows buffered through ``con``: in one transaction, or in one per
        :data:`UPSERT_ROWS` rows if some replace rows of the index; with status's figures kept, into
        the transaction kept open over batches (:data:`KEPT_ROWS`)."""
        rows = self.rows
        if self.open is not None or figures_kept(con):
            for i in range(0, len(rows), UPSERT_ROWS):
                part = rows[i:i + UPSERT_ROWS]
                if self.open is None:
                    self._begin(con)
                try:
                    self._write_rows(con, part, self.open_sops)
                except BaseException:
                    self.abort()
                    raise
                self.rows = rows[i + UPSERT_ROWS:]
                self.open_rows += len(part)
                if self.open_rows >= KEPT_ROWS:
                    self.commit()
            self.last = time.monotonic()
            if self.open is not None and self.last - self.open_since >= KEPT_SECONDS:
                self.commit()
            return
        upserting = bool(self.upserts) and any(r[0] in self.upserts for r in rows)
        step = max(1, UPSERT_ROWS if upserting else len(rows))
        with changing_rows(con, upserting):
            for i in range(0, len(rows), step):  # figures not kept: nothing to move
                with transaction(con):
                    self._write_rows(con, rows[i:i + step], None)
                self.rows = rows[i + step:]
        self.last = time.monotonic()

    def _begin(self, con: duckdb.DuckDBPyConnection) -> None:
        """Open the transaction kept over batches, status's figures kept current at its commit."""
        stack = ExitStack()
        try:
            stack.enter_context(changing_rows(con))
            stack.enter_context(transaction(con))
            self.open_sops = []
            stack.enter_context(keeping_if_kept(con, self.open_sops))
        except BaseException:
            stack.close()
            raise
        self.open, self.open_rows, self.open_since = stack, 0, time.monotonic()

    def commit(self) -> None:
        """Commit the transaction kept open over batches, if any: status's figures move by its
        instances (one pass over the books' keys for all its batches)."""
        if self.open is not None:
            stack, self.open = self.open, None
            stack.close()

    def abort(self) -> None:
        """Roll back the transaction kept open over batches, if any (its rows stay unwritten: the
        next scan reads their files again)."""
        if self.open is not None:
            stack, self.open = self.open, None
            err = sys.exc_info()[1] or RuntimeError("the scan stopped")
            stack.__exit__(type(err), err, err.__traceback__)  # each context sees it: the transaction rolls back

    def _relocate(self, con: duckdb.DuckDBPyConnection) -> None:
        """The row ids of every row still to replace (``upserts``, the staged batch's included), found
        again by path in one pass; the staged batch rebound to them."""
        insert_frame(con, "ops/scan/pending_stage", {"path": list(self.upserts)})
        run_script(con, "ops/scan/upsert_relocate")
        now = dict(run(con, "ops/scan/relocated").fetchall())
        log.info("scan: rows moved in the index; %d of %d rows still to replace found again by path",
                 len(now), len(self.upserts))
        self.upserts.update((p, rid) for p, rid in now.items() if p in self.upserts)
        run_script(con, "ops/scan/upsert_rebind")

    def _write_rows(self, con: duckdb.DuckDBPyConnection, rows: list[Row], sops: list[str] | None) -> None:
        """Write ``rows``; add to ``sops`` (if given) the SOPInstanceUIDs whose rows change."""
        old = [r for r in rows if r[0] in self.upserts] if self.upserts else []
        params = {"scan_id": self.scan_id, "volume": self.volume, "root": self.root}
        record = _recording(con)
        # the attribute lists, and what changed where a content is replaced (an update's reason)
        attrdigest.record(con, COLUMNS, rows, old, self.scan_id)
        # staged in a temporary table, then written in one statement per batch (or a few, with
        # upserts: ops/scan/upsert_files records the replaced rows' old keys as it goes)
        run_script(con, "ops/scan/stage_begin")
        for part in (rows[i:i + INSERT_ROWS] for i in range(0, len(rows), INSERT_ROWS)):
            cols: dict[str, Sequence[Any]] = {k: v for k, v in zip(COLUMNS, zip(*part)) if k not in SIDE_COLUMNS}
            cols["old_rid"] = [self.upserts.get(r[0]) for r in part] if old else [None] * len(part)
            insert_frame(con, "ops/scan/stage_files", cols, **params)
        if old:
            # the rows replaced, found by their row ids (checked against the paths); if rows moved
            # meanwhile (a checkpoint), every row still to replace is found again by its path
            run_script(con, "ops/scan/upsert_find")
            ((moved,),) = run(con, "ops/scan/upsert_moved").fetchall()
            if moved:
                self._relocate(con)
                run_script(con, "ops/scan/upsert_find")
            run_script(con, "ops/scan/upsert_files", {"scan_id": self.scan_id, "record": record})
        else:
            run_script(con, "ops/scan/insert_files")
        if sops is not None:
            i_sop = COLUMNS.index("sop_instance_uid")
            sops.extend({r[i_sop] for r in rows if r[i_sop] is not None})
            if old:
                sops.extend(r[0] for r in run(con, "ops/scan/sops_replaced").fetchall())
        if record:
            run(con, "ops/scan/dirty_new_keys", {"scan_id": self.scan_id})
            run_script(con, "ops/scan/dirty_overflow", {"max": DIRTY_MAX})
        run_script(con, "ops/scan/stage_end")
        for r in old:
            self.upserts.pop(r[0], None)


@contextmanager
def changing_rows(con: duckdb.DuckDBPyConnection, changing: bool = True) -> Iterator[None]:
    """Inside the block DuckDB may use :data:`UPSERT_MEMORY_LIMIT` if ``changing`` (work that changes
    rows already in the index: upserts, files marked missing), unless ``$PACSCOPY_MEMORY_LIMIT`` sets
    the limit; back to the scan's after (:func:`_lower_limit`)."""
    raise_limit = changing and not os.environ.get("PACSCOPY_MEMORY_LIMIT")
    if raise_limit:
        con.execute("SET memory_limit = $m", {"m": UPSERT_MEMORY_LIMIT})
    try:
        yield
    finally:
        if raise_limit:
            _lower_limit(con)


def _lower_limit(con: duckdb.DuckDBPyConnection) -> None:
    """Back to the scan's memory limit after upserts, if DuckDB can: the pages they changed stay in
    memory until a checkpoint writes them (at 30 M files, after 100,000 spread changes, DuckDB could
    not free enough for 128 MB, before schema 0033 dropped the path index); then the raised limit
    stays for this connection (the next hop or the end of the scan closes it)."""
    import duckdb

    try:
        con.execute("SET memory_limit = $m", {"m": SCAN_MEMORY_LIMIT})
    except duckdb.OutOfMemoryException:
        log.debug("scan: DuckDB's memory limit stays at %s after upserts", UPSERT_MEMORY_LIMIT)


class _Reader:
    """Hands the files to read to the workers as the walk finds them.

    Worker processes start only once the work is big enough to be worth them
    (:data:`POOL_FILES`, :data:`POOL_BYTES`); a small job is read in this process.
    """

    def __init__(self, workers: int, hold: bool = False, spare: Workers | None = None,
                 io_depth: int | None = None) -> None:
        self.n_workers = workers
        self.io_depth = io_depth
        #: Keep one core for this process until :meth:`activate` (it opens the index meanwhile).
        self.hold = hold
        self.pool: Workers | None = None
        self.spare = spare  # started early by the caller: used if the job is big enough
        self.pending: list[bytes] = []  # before the pool starts
        self.pending_sizes: list[int] = []
        self.chunk: list[bytes] = []
        self.sizes: list[int] = []
        self.chunk_bytes = 0
        self.files = self.nbytes = 0

    def add(self, path: bytes, size: int, wait: bool = True) -> list[list[Row]]:
        """Queue one file; return the chunks the workers have finished meanwhile.

        With ``wait``, a walk far ahead of the workers waits for them here.
        """
        self.files += 1
        self.nbytes += size
        if self.pool is None:
            self.pending.append(path)
            self.pending_sizes.append(size)
            if self.n_workers > 1 and (self.files >= POOL_FILES or self.nbytes >= POOL_BYTES):
                self.pool, self.spare = self.spare, None
                if self.pool is None:
                    self.pool = Workers(self.n_workers, self.n_workers - 1 if self.hold else None, self.io_depth)
                self.chunk, self.pending = self.pending, []
                self.sizes, self.pending_sizes = self.pending_sizes, []
                self.chunk_bytes = self.nbytes
                self._submit()
            return []
        self.chunk.append(path)
        self.sizes.append(size)
        self.chunk_bytes += size
        if len(self.chunk) >= CHUNK_FILES or self.chunk_bytes >= CHUNK_BYTES:
            self._submit()
            if wait and self.pool.backlog() > BACKLOG_PER_WORKER * self.n_workers:
                return self.pool.wait()  # the walk is far ahead: bounded memory
            return self.pool.poll()
        return []

    def _submit(self) -> None:
        assert self.pool is not None
        for i in range(0, len(self.chunk), CHUNK_FILES):
            self.pool.submit(self.chunk[i : i + CHUNK_FILES], self.sizes[i : i + CHUNK_FILES])
        self.chunk, self.sizes, self.chunk_bytes = [], [], 0

    def rest(self, idle: Callable[[], object] | None = None) -> Iterator[list[Row]]:
        """Every chunk not yet returned by :meth:`add`, as it finishes (``idle``: see Workers.results)."""
        if self.pool is None:  # read here, ahead in threads if the storage is slow
            import queue

            chunks: queue.Queue[tuple[list[bytes], list[int]] | None] = queue.Queue()
            for i in range(0, len(self.pending), CHUNK_FILES):
                chunks.put((self.pending[i : i + CHUNK_FILES], self.pending_sizes[i : i + CHUNK_FILES]))
            chunks.put(None)
            self.pending, self.pending_sizes = [], []
            yield from ReadAhead(self.io_depth or IO_DEPTH, IO_BYTES).rows(chunks)
            return
        if self.chunk:
            self._submit()
        yield from self.pool.results(idle)

    def activate(self) -> None:
        """All workers may work now."""
        self.hold = False
        if self.pool is not None:
            self.pool.activate()

    def backlog(self) -> int:
        """Chunks handed to the workers and not yet taken back."""
        return self.pool.backlog() if self.pool is not None else 0

    def close(self) -> None:
        for pool in (self.pool, self.spare):
            if pool is not None:
                pool.close()


class Begun:
    """A scan whose walk and reading started before its index was open (:func:`begin_scan`)."""

    def __init__(self, broot: bytes, workers: int, pool: Workers | None = None, io_depth: int | None = None) -> None:
        self.broot = broot
        self.started = time.monotonic()
        self.walker = walk(broot)
        # While the index opens, this process needs a core of its own: one worker waits.
        self.reader = _Reader(workers, hold=(os.cpu_count() or 1) <= workers, spare=pool, io_depth=io_depth)
        self.entries: list[_Entry] = []  # everything walked so far, in order
        self.finished: list[list[Row]] = []  # chunks the workers sent back meanwhile

    def run(self, limit: int) -> None:
        for e in self.walker:
            self.entries.append(e)
            if e.status == "ok":
                self.finished.extend(self.reader.add(e.path, e.size, wait=False))
                if self.reader.files >= limit:
                    break

    def close(self) -> None:
        """Stop the workers (a no-op once :func:`scan_root` took the scan over)."""
        self.reader.close()


def begin_scan(root: str | bytes | os.PathLike[str], *, workers: int | None = None,
               pool: Workers | None = None, io_depth: int | None = None) -> Begun:
    """Start walking and reading ``root`` before the index is open.

    Only for a scan that reads every regular file anyway: a first scan into a
    new index, or ``rehash``. Opening the index (importing DuckDB, migrating)
    takes about 0.1 s; the workers read meanwhile. At most :data:`EARLY_FILES`
    files are read ahead. Hand the result to :func:`scan_root` (same root), or
    :meth:`Begun.close` it if the scan does not happen. ``pool``: workers from
    :func:`pacscopy.scan.pool.scan_workers`, started even earlier (closed with the scan).
    """
    try:
        broot = _root_bytes(root)
    except BaseException:
        if pool is not None:
            pool.close()
        raise
    begun = Begun(broot, workers or os.cpu_count() or 1, pool, io_depth)
    try:
        begun.run(EARLY_FILES)
    except BaseException:
        begun.close()
        raise
    return begun


def _root_bytes(root: str | bytes | os.PathLike[str]) -> bytes:
    broot = os.fsencode(root)
    if not os.path.lexists(broot):
        raise InputError(f"root {display_path(broot)} does not exist")
    return os.path.abspath(broot).rstrip(b"/") or b"/"


def scan_root(
    index: str,
    root: str | bytes | os.PathLike[str],
    *,
    volume: str | None = None,
    workers: int | None = None,
    io_depth: int | None = None,
    rehash: bool = False,
    on_total: Callable[[int, int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_walk: Callable[[int, int, int], None] | None = None,
    begun: Begun | None = None,
) -> ScanResult:
    """Scan one root into the index at ``index`` (created if missing); incremental unless ``rehash``.

    The index is open only for short stretches: to start the scan, to write
    each batch, to finish (see :data:`HOP_SECONDS`).

    ``on_walk(found, files, bytes)`` is called when the scan of the root starts
    and then while the walk runs (at most every :data:`WALK_REPORT_S`):
    ``found`` files found so far, of which ``files`` (``bytes``) are to be
    read; ``on_total(files, bytes)`` once the walk knows the work;
    ``on_progress(files, bytes)`` as files are read (reading starts while the
    walk runs), with the counts since the previous call. ``begun``:
    this root's scan as :func:`begin_scan` started it (first scan or rehash).
    ``io_depth``: reads in flight at most, over all workers (default
    :data:`pacscopy.scan.pool.IO_DEPTH`; each worker adapts below it to the latency it sees).
    """
    broot = _root_bytes(root)
    if begun is not None and begun.broot != broot:
        raise ValueError("begun is the scan of another root")
    sroot = display_path(broot)
    volume = volume or display_path(os.path.basename(broot)) or sroot
    started = time.monotonic() if begun is None else begun.started
    hop = _Hop(index, create=True)
    con = hop.connect()
    assert con is not None
    try:
        scan_id, known = start_root(con, sroot, volume, rehash)
    except BaseException:
        con.close()
        raise
    res = ScanResult(sroot, volume, scan_id)
    writer = _Writer(hop, scan_id, volume, sroot, con)  # kept open while no other process waits for it
    reader = _Reader(workers or os.cpu_count() or 1, io_depth=io_depth) if begun is None else begun.reader

    def done(chunks: list[list[Row]]) -> None:
        for rows in chunks:
            nbytes = sum(r[2] or 0 for r in rows)
            res.files_read += len(rows)
            res.bytes_read += nbytes
            writer.add(rows)
            if on_progress:
                on_progress(len(rows), nbytes)

    pending: list[tuple[_Entry, bool]] = []  # walked, not yet compared with the index (:func:`settle`)

    def visit(e: _Entry, early: bool) -> None:
        """One walked entry: compared with the index in batches of :data:`VISIT_BATCH` (:func:`settle`)."""
        pending.append((e, early))
        if len(pending) >= VISIT_BATCH:
            settle()

    def settle() -> None:
        """The entries walked since the last call: unchanged, written as they are, or (unless read early already) read."""
        if not pending:
            return
        batch = pending[:]
        pending.clear()
        keys = [display_path(e.path) for e, _ in batch]
        if known.n:
            rids, codes, same = known.take(keys, [e.size for e, _ in batch], [e.mtime_ns for e, _ in batch])
        else:
            rids, codes, same = [-1] * len(batch), [0] * len(batch), [False] * len(batch)
        for (e, early), key, rid, code, unchanged in zip(batch, keys, rids, codes, same):
            if e.status != "ok":
                if rid < 0 or code != ENTRY_CODES[e.status]:
                    res.new += rid < 0
                    res.changed += rid >= 0
                    if rid >= 0:
                        writer.upserts[key] = rid
                    writer.add([entry_row(e.path, e.size, e.mtime_ns, e.status, e.reason, e.detail)])
                else:
                    res.unchanged += 1
                continue
            if not rehash and not early and rid >= 0 and unchanged and code == READ:
                res.unchanged += 1
                continue
            res.new += rid < 0
            res.changed += rid >= 0
            if rid >= 0:
                writer.upserts[key] = rid
            if not early:
                done(reader.add(e.path, e.size))

    found = len(begun.entries) if begun is not None else 0
    try:
        if on_walk:
            on_walk(found, reader.files, reader.nbytes)
        walker: Iterator[_Entry] = walk(broot)
        if begun is not None:
            reader.activate()
            for e in begun.entries:
                visit(e, True)
            settle()
            begun.entries = []
            done(begun.finished)
            begun.finished = []
            walker = begun.walker
        next_report = next_tick = time.monotonic() + WALK_REPORT_S
        for e in walker:
            visit(e, False)
            found += 1
            now = time.monotonic()
            if now >= next_tick:  # files unchanged for a while: still let a waiting process in
                settle()
                writer.tick()
                next_tick = now + WAITERS_EVERY
            if on_walk and now >= next_report:
                on_walk(found, reader.files, reader.nbytes)
                next_report = time.monotonic() + WALK_REPORT_S
        settle()
        if on_total:
            on_total(reader.files, reader.nbytes)
        # Waiting for the workers is the time to write what has come back.
        for rows in reader.rest(idle=writer.idle):
            if not writer.final and reader.pool is not None and reader.backlog() < reader.n_workers:
                # The last chunks: hold the index to the end and write each chunk as it comes,
                # so that little is left to write once the workers are done (the other cores idle then).
                writer.final = True
            done([rows])
    except BaseException:
        writer.close()
        raise
    finally:
        reader.close()
    gone = known.gone()
    del known
    res.missing = len(gone)
    try:
        con = writer.take()
        assert con is not None
        if writer.rows:
            writer.write(con)
        writer.commit()
        finish_root(con, res, gone, started)
    finally:
        writer.close()
    return res


def start_root(con: duckdb.DuckDBPyConnection, sroot: str, volume: str,
               rehash: bool = False) -> tuple[int, Known]:
    """Open the scan of one root: its ``scans`` row, and the files indexed under it (:class:`Known`:
    path hash, size and mtime, status, row id), which the walk takes as it finds them: what is left
    at the end has vanished."""
    with transaction(con), keeping_if_kept(con, []):  # a scans row: status's kept figures still hold
        started_row = run(con, "ops/scan/scan_start", {"root": sroot, "volume": volume, "rehash": rehash,
                                                  "version": __version__}).fetchone()
    assert started_row is not None
    scan_id = started_row[0]
    if rehash:  # every row is rewritten: the next check is a full one, nothing to record
        run_script(con, "ops/scan/dirty_full")
    with transaction(con):  # one snapshot: the count and the rows read stretch by stretch agree
        known = Known.load(con, sroot)
    return scan_id, known


#: Vanished files marked missing per transaction (:func:`finish_root`).
GONE_ROWS = 200_000


def finish_root(con: duckdb.DuckDBPyConnection, res: ScanResult, gone: Gone, started: float) -> None:
    """Close the scan of one root once its rows are written: mark the ``gone`` files missing (their
    keys recorded for the next incremental check), compare new files with stored contents, write
    the counts to ``scans`` and read the index's files per status into ``res``."""
    scan_id = res.scan_id
    if len(gone):
        with transaction(con):
            record = _recording(con)
            if record and len(gone) > DIRTY_MAX:
                too_many = run(con, "ops/scan/dirty_too_many", {"n": len(gone), "max": DIRTY_MAX}).fetchone()
                if too_many and too_many[0]:  # the next check is a full one: nothing to record
                    run_script(con, "ops/scan/dirty_full")
                    record = False
        # in slices of GONE_ROWS, a transaction each: DuckDB keeps an update's undo data in memory
        # (5 M files marked at once did not fit the scan's 128 MB); with the upserts' budget: the
        # index's pages they changed stay in memory until a checkpoint, and with status's figures
        # kept each transaction evaluates its instances' states too (at 50 M files, after 500,000
        # changed files written, marking 1,000 missing ran out of 128 MB). Each row id is checked
        # against its file's path first (a checkpoint may have moved rows); those that moved are
        # found again by their paths' hashes in one pass over the root's files, and marked last.
        moved: list[Gone] = []
        with changing_rows(con):
            for i in range(0, len(gone), GONE_ROWS):
                with transaction(con):
                    moved.append(_mark_missing(con, gone.part(slice(i, i + GONE_ROWS)), scan_id, record))
            lost = Gone.joined(moved, gone.mask)
            if len(lost):
                with transaction(con):  # found and marked in one transaction: no checkpoint between
                    found = lost.moved_to(find_rows(con, res.root, lost))
                    log.info("%d vanished files' rows had moved; %d found again", len(lost), len(found))
                    _mark_missing(con, found, scan_id, record, check=False)
    if res.new:  # a corrected copy under a new path: what changed against the content stored
        with transaction(con):
            attrdigest.after_scan(con, scan_id)
    res.seconds = time.monotonic() - started
    with transaction(con), keeping_if_kept(con, []):
        run(con, "ops/scan/scan_finish", {"new": res.new, "changed": res.changed, "unchanged": res.unchanged,
                                     "missing": res.missing, "bytes_read": res.bytes_read, "scan_id": scan_id})
    res.status_counts = fetch(con, "ops/scan/status_counts", StatusCount)
    res.statuses = {c.status: c.files for c in res.status_counts}


def _mark_missing(con: duckdb.DuckDBPyConnection, gone: Gone, scan_id: int, record: bool,
                  check: bool = True) -> Gone:
    """Mark the ``gone`` files missing within the caller's transaction, those whose row id still holds
    their path (unless not ``check``); return the others (their rows moved)."""
    sops: list[str] = []
    with keeping_if_kept(con, sops) as keep:
        run_script(con, "ops/scan/gone_begin")
        run(con, "ops/scan/gone_add", {"rids": gone.rids.tolist()})
        left = gone.part(slice(0, 0))
        if check:
            now = run(con, "ops/scan/gone_paths").fetchnumpy()
            ok = gone.still(now["rid"], now["path"].tolist())
            if not ok.all():
                left = gone.part(~ok)
                run_script(con, "ops/scan/gone_begin")
                run(con, "ops/scan/gone_add", {"rids": gone.rids[ok].tolist()})
        if record:
            run(con, "ops/scan/dirty_old_keys", {"scan_id": scan_id})
        if keep:
            sops.extend(r[0] for r in run(con, "ops/scan/sops_of_gone").fetchall())
        run(con, "ops/scan/mark_missing", {"scan_id": scan_id})
        if record:
            run_script(con, "ops/scan/dirty_overflow", {"max": DIRTY_MAX})
        run_script(con, "ops/scan/gone_end")
    return left


class StatusCount(NamedTuple):
    """Files and bytes of one status in the whole index."""

    status: str
    files: int
    bytes: int


@dataclass
class ScanRun:
    """A scan of one or more roots into one index."""

    index: str
    results: list[ScanResult] = field(default_factory=list)
    statuses: list[StatusCount] = field(default_factory=list)  # the whole index afterwards


def scan(
    roots: Sequence[str | os.PathLike[str]],
    index: str | None = None,
    *,
    volume: str | None = None,
    workers: int | None = None,
    io_depth: int | None = None,
    rehash: bool = False,
    on_total: Callable[[str | os.PathLike[str], int, int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_walk: Callable[[str | os.PathLike[str], int, int, int], None] | None = None,
    on_done: Callable[[ScanResult], None] | None = None,
) -> ScanRun:
    """Scan ``roots`` one after the other into the index at ``index`` (created if missing).

    ``on_total(root, files, bytes)``, ``on_walk(root, found, files, bytes)`` and
    ``on_progress(files, bytes)`` as in :func:`scan_root`; ``on_done(result)`` after each root. ``io_depth``: as in :func:`scan_root`.
    """
    if not roots:
        raise InputError("no root to scan")
    for r in roots:
        if not os.path.lexists(r):
            raise InputError(f"root {os.fsdecode(r)} does not exist")
    path = index or default_index_path()
    workers = workers or os.cpu_count() or 1
    locks = lock_roots(path, roots)  # one scan per root; scans of other roots run beside it
    # A first scan or a rehash reads every file: the workers read the first root
    # while the index is opened.
    try:
        early = rehash or not os.path.exists(path)
        begun = (begin_scan(roots[0], workers=workers, pool=scan_workers(workers, io_depth), io_depth=io_depth)
                 if early else None)
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    out = ScanRun(path)
    try:
        for i, root in enumerate(roots):
            total = None
            if on_total is not None:
                def total(files: int, nbytes: int, root: str | os.PathLike[str] = root) -> None:
                    on_total(root, files, nbytes)
            walking = None
            if on_walk is not None:
                def walking(found: int, files: int, nbytes: int, root: str | os.PathLike[str] = root) -> None:
                    on_walk(root, found, files, nbytes)
            res = scan_root(path, root, volume=volume, workers=workers, io_depth=io_depth, rehash=rehash,
                            on_total=total, on_walk=walking,
                            on_progress=on_progress, begun=begun if i == 0 else None)
            out.results.append(res)
            if on_done is not None:
                on_done(res)
        out.statuses = out.results[-1].status_counts
    finally:
        if begun is not None:
            begun.close()
        for lock in locks:
            lock.release()
    return out


def lock_roots(index: str, roots: Sequence[str | os.PathLike[str]]) -> list[Any]:
    """Take the run folder's lock of each root (its real path), or refuse naming the scan that holds one,
    or the running scan of a root inside or above one of them.

    Two scans of one root would read the same files and race to record them, and so would two scans
    of roots inside one another (each reads its known files at its start: a file the other records
    meanwhile would be recorded twice). Scans of disjoint roots into one index take turns at the
    index (the lock-hopping writer).
    """
    from pacscopy.runfolder import busy_error, held_locks, serialised, take_lock

    reals = sorted({os.path.realpath(os.fsdecode(r)) for r in roots})
    locks: list[Any] = []
    try:
        with serialised(index, "scan-roots"):  # two scans of nested roots starting at once: one wins
            for real in reals:
                locks.append(take_lock(index, "scan", real, f"a scan of {real} into index {index}",
                                       "one scan per root (scans of other roots may run at once); wait for it to end "
                                       "or stop it (Ctrl-C)", root=real))
            ours = {lock.path for lock in locks}
            for path, rec in held_locks(index, "scan"):
                other = rec.get("root")
                if path in ours or not isinstance(other, str):
                    continue
                mine = next((r for r in reals if _nested(r, other)), None)
                if mine is not None:
                    where = "inside" if os.path.commonpath([mine, other]) == other else "above"
                    raise busy_error(path, f"a scan of {other} into index {index}",
                                     f"{mine} is {where} its root, and scans of roots inside one another would "
                                     "record the same files twice; wait for it to end or stop it (Ctrl-C)")
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return locks


def _nested(a: str, b: str) -> bool:
    """Whether real paths ``a`` and ``b`` are one inside the other (or the same)."""
    return os.path.commonpath([a, b]) in (a, b)
