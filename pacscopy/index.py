"""The DuckDB index: open it, migrate it, load named SQL, run it with parameters.

The index is a plain DuckDB file that a PACS administrator can open with the
``duckdb`` CLI. Its schema lives in ``sql/schema/NNNN_name.sql``; each file is
applied once, in one transaction, and recorded in ``schema_migrations``. All
other SQL lives in named files under ``sql/`` too, and values always travel
as ``$parameters``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from pacscopy.errors import IndexBusyError, IndexFileError, QueryError
from pacscopy.runfolder import DEFAULT_INDEX, default_index_path  # noqa: F401  (defined without DuckDB, for the CLI)

log = logging.getLogger(__name__)

_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def sql_dir() -> Path:
    """Where the SQL files are: inside the package in a wheel, beside it in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "sql", here.parent / "sql"):
        if (candidate / "schema").is_dir():
            return candidate
    raise IndexFileError(f"pacscopy's SQL files are missing (looked in {here / 'sql'}): reinstall pacscopy")


@cache
def load_sql(name: str) -> str:
    """Text of ``sql/<name>.sql`` (``name`` may contain a sub-folder)."""
    path = sql_dir() / f"{name}.sql"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QueryError(f"no SQL file named {name!r} in {sql_dir()}") from None


def migrations() -> list[tuple[int, str, str]]:
    """All schema migrations as (version, name, sql), in order."""
    out = []
    for p in sorted((sql_dir() / "schema").iterdir()):
        m = _MIGRATION.match(p.name)
        if m:
            out.append((int(m.group(1)), m.group(2), p.read_text(encoding="utf-8")))
    return out


#: What to do about a damaged index: said by every message that finds one.
RECOVER = ("restore your backup copy of the index (see README, 'Backing up the index'), "
           "or rescan into a new index: pacscopy scan ROOT... --index NEW.duckdb")


#: The budgets the last :func:`open_index` set (for :func:`failure_message`'s advice).
_budget: dict[str, str] = {}

#: The smallest DuckDB memory budget measured to run every command at 5 million files (BENCHMARKS.md).
MEASURED_BUDGET = "1GB"


def _mib(size: str) -> float:
    """A DuckDB size ('1GB', '256MiB', '900 KB') in MiB; 0 if unreadable."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(i?)B?\s*", size, re.IGNORECASE)
    if not m:
        return 0.0
    n, unit, binary = float(m.group(1)), m.group(2).upper(), bool(m.group(3))
    exp = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit]
    return n * (1024 if binary else 1000) ** exp / 2**20


def memory_mib(con: duckdb.DuckDBPyConnection) -> float:
    """DuckDB's memory limit on ``con``, in MiB."""
    row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    return _mib(str(row[0])) if row else 0.0


def _needed(limit: str) -> str:
    """How much memory to give instead of ``limit``: the measured budget, or twice ``limit`` above it."""
    have = _mib(limit)
    if have and have >= _mib(MEASURED_BUDGET):
        return f"{max(2 * have / 1024, 2):.0f}GB"
    return MEASURED_BUDGET


def failure_message(e: duckdb.Error) -> str:
    """One line for a DuckDB error the library did not foresee: what happened to the index and what to do."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    low = str(e).lower()
    if isinstance(e, duckdb.OutOfMemoryException) and ("max_temp_directory_size" in low or "offload" in low):
        # DuckDB's temporary files hit their cap (_temp_settings: $PACSCOPY_TEMP_LIMIT, else a share of the free disk)
        where = _budget.get("temp_directory") or "a .tmp folder next to the index"
        cap = _budget.get("temp_limit") or "90% of the free disk there"
        used = re.search(r"\(([^()]*) used\)", str(e))
        more = _mib(_budget.get("temp_limit_size", "")) * 2**20
        ask = f"PACSCOPY_TEMP_LIMIT={_size(2 * more).replace(' ', '')} (twice this cap)" if more else "PACSCOPY_TEMP_LIMIT higher"
        return (f"the temporary disk is full: DuckDB spills what does not fit in memory to {where} and may use "
                f"{cap} there{' (' + used.group(1) + ' used)' if used else ''}; nothing was half-written: set "
                f"{ask} if that disk has the room, else PACSCOPY_TEMP_DIRECTORY to a folder on a bigger disk "
                "(check needs about 1.1 GB per million files there) or PACSCOPY_MEMORY_LIMIT higher (less spills)")
    if isinstance(e, duckdb.OutOfMemoryException):
        limit = _budget.get("memory") or os.environ.get("PACSCOPY_MEMORY_LIMIT") or "1GB"
        used = re.search(r"\(([^()]*) used\)", str(e))
        return (f"the memory budget is too small for this work: DuckDB may use {limit}"
                f"{' (' + used.group(1) + ' used)' if used else ''} and needs more; nothing was half-written: "
                f"set PACSCOPY_MEMORY_LIMIT={_needed(limit)} (enough for every command at 5 million files, "
                "BENCHMARKS.md) or more")
    low = first.lower()
    if "no space left" in low:
        return (f"the disk is full (DuckDB spills to a .tmp folder next to the index; check needs about "
                f"1.1 GB per million files there); nothing was half-written [{first}]")
    if "checksum" in low or "could not read enough bytes" in low or "corrupt" in low:
        return f"the index is damaged ({first}): {RECOVER}"
    return f"index: {first} (PACSCOPY_DEBUG=1 shows the traceback)"


_DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


def _looks_like_duckdb(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(12)[8:12] == _DUCKDB_MAGIC
    except OSError:
        return False


class _Locked(Exception):
    """DuckDB's lock conflict: another process holds the index (``pid`` as DuckDB names it)."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(pid)
        self.pid = pid


_HOLDER_PID = re.compile(r"\(PID (\d+)\)")

#: Seconds :func:`open_index` waits for an index another process holds, unless told otherwise.
DEFAULT_LOCK_WAIT = 60.0

def lock_wait() -> float:
    """The default lock wait: ``$PACSCOPY_LOCK_WAIT`` seconds, else :data:`DEFAULT_LOCK_WAIT`."""
    raw = os.environ.get("PACSCOPY_LOCK_WAIT")
    if not raw:
        return DEFAULT_LOCK_WAIT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise IndexFileError(f"PACSCOPY_LOCK_WAIT={raw!r} is not a number of seconds (e.g. 60, or 0: do not wait)")
    return value


#: The storage format a new index is written in: one the ``duckdb`` CLI can open. DuckDB 2.0 writes a
#: format (version 69) that the CLI installable from PyPI (``duckdb-cli``, 1.5.x) refuses; files written in
#: 1.5's format are read and written by DuckDB 2.0 as well. An index created before keeps its format.
CLI_STORAGE_VERSION = "v1.5.0"


def _connect(path: str, read_only: bool, create: bool = False) -> duckdb.DuckDBPyConnection:
    try:
        if create:
            return duckdb.connect(path, config={"storage_compatibility_version": CLI_STORAGE_VERSION})
        return duckdb.connect(path, read_only=read_only)
    except duckdb.Error as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        low = msg.lower()
        if "conflicting lock" in low or "could not set lock" in low:
            m = _HOLDER_PID.search(msg)
            raise _Locked(int(m.group(1)) if m else None) from None
        if "permission denied" in low:
            raise IndexFileError(f"permission denied opening index {path}: check its owner and mode") from None
        if os.path.exists(path) and _looks_like_duckdb(path):
            raise IndexFileError(f"index {path} is damaged (DuckDB says: {msg}): {RECOVER}") from None
        if isinstance(e, duckdb.IOException) and os.path.exists(path):
            raise IndexFileError(f"{path} is not a pacscopy index (not a DuckDB file; DuckDB says: {msg})") from None
        raise IndexFileError(f"cannot open index {path}: {msg}") from None


def _secure(path: str) -> None:
    """The index holds patient data: readable by its owner only (also its WAL)."""
    for p in (path, path + ".wal"):
        try:
            os.chmod(p, 0o600)
        except FileNotFoundError:
            pass


def _exists(path: str) -> bool:
    """Whether ``path`` exists; a folder on the way that may not be entered is said as such."""
    try:
        os.stat(path)
        return True
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        raise IndexFileError(f"no index at {path}: a part of that path is a file, not a folder") from None
    except PermissionError:
        raise IndexFileError(f"permission denied: cannot reach {path} (a folder on the way may not be "
                             "entered: check its owner and mode)") from None


def _connect_waiting(path: str, read_only: bool, wait: float | None,
                     on_wait: Callable[[str], None] | None, create: bool = False) -> duckdb.DuckDBPyConnection:
    """:func:`_connect`, retrying with short jittered sleeps while another process holds the index."""
    from pacscopy import runfolder

    budget = lock_wait() if wait is None else wait
    started = time.monotonic()
    deadline = started + budget
    said = wanted = False
    sleep = 0.02
    while True:
        try:
            con = _connect(path, read_only, create)
        except _Locked as e:
            holder = e.pid
        else:
            runfolder.got(path)  # if this process said it waits (also in an earlier call that did not wait)
            return con
        if not wanted:  # a scan holding the index lets go for a process that says it waits (runfolder.want)
            wanted = True
            runfolder.want(path)
        if time.monotonic() >= deadline:
            if budget:  # gave up; one that does not wait (0) polls and is still waiting
                runfolder.got(path)
            who = runfolder.describe_pid(path, holder)
            waited = f"waited {budget:g} s" if budget else "did not wait (wait 0)"
            raise IndexBusyError(f"index {path} is in use by {who}; {waited}: try again when it is done, or "
                                 "wait longer with PACSCOPY_LOCK_WAIT=SECONDS") from None
        if not said and time.monotonic() - started > 0.5:  # a send's merge is waited out without a word
            said = True
            tell = on_wait if on_wait is not None else runfolder.on_lock_wait
            if tell is not None:
                tell(f"index {path} is in use by {runfolder.describe_pid(path, holder)}: waiting up to "
                     f"{budget:g} s for it")
        # jittered, growing to at most 0.25 s: short holders (a send's merge) are waited out quickly
        time.sleep(min(sleep * (0.5 + random.random()), max(deadline - time.monotonic(), 0.0)))
        sleep = min(sleep * 1.5, 0.25)


def open_index(path: str | None = None, *, create: bool = False, read_only: bool = False,
               memory_limit: str = "1GB", threads: int | None = None, wait: float | None = None,
               on_wait: Callable[[str], None] | None = None, lean: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (and with ``create``, create and migrate) the index at ``path``.

    Without ``create`` a missing file is an error rather than a new empty
    index: a typo in ``--index`` must not silently start a second migration.
    ``memory_limit`` is DuckDB's limit unless ``$PACSCOPY_MEMORY_LIMIT`` sets one;
    ``threads``, if given, DuckDB's number of threads (default: one per core).

    Another process holding the index (DuckDB allows one writer, and no reader
    beside it) is waited for up to ``wait`` seconds (default :func:`lock_wait`),
    with ``on_wait`` (else :data:`pacscopy.runfolder.on_lock_wait`) told once who holds it; then
    :class:`IndexBusyError` names the holder. ``lean`` skips the integrity check
    and the migrations (for a send's frequent short opens of an index it opened fully at its start).
    A read-write open first merges the journals of sends that ended or died
    (:mod:`pacscopy.journal`).
    """
    from pacscopy import runfolder

    path = path or default_index_path()
    exists = _exists(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not exists:
        if not _exists(folder):
            raise IndexFileError(f"no index at {path}: the folder {folder} does not exist")
        if not create:
            raise IndexFileError(f"no index at {path}: run 'pacscopy scan ROOT --index {path}' first")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise IndexFileError(f"permission denied: cannot create index {path} in {folder}")
    if os.path.isdir(path):
        raise IndexFileError(f"{path} is a folder, not an index file")
    if exists and not os.access(path, os.R_OK if read_only else os.R_OK | os.W_OK):
        raise IndexFileError(f"permission denied: cannot {'read' if read_only else 'read and write'} index "
                             f"{path} (check its owner and mode)")
    if read_only and exists:
        from pacscopy.journal import dead_journals

        if dead_journals(path) and os.access(path, os.W_OK):
            # a send ended (or died) before it could merge all it recorded: merge it first, for every reader
            open_index(path, wait=wait, on_wait=on_wait, lean=True, memory_limit=memory_limit).close()
    if not exists:
        old = os.umask(0o077)
        try:
            con = _connect_waiting(path, False, wait, on_wait, create=True)
        finally:
            os.umask(old)
    else:
        con = _connect_waiting(path, read_only, wait, on_wait)
    runfolder.register(path)
    # Bounded memory whatever the archive size: DuckDB spills to disk beyond this.
    limit = os.environ.get("PACSCOPY_MEMORY_LIMIT") or memory_limit
    try:
        con.execute("SET memory_limit = $limit", {"limit": limit})
        con.execute("SET preserve_insertion_order = false")
        if threads is not None:
            con.execute("SET threads = $threads", {"threads": threads})
    except duckdb.Error as e:
        con.close()
        raise IndexFileError(f"PACSCOPY_MEMORY_LIMIT={limit!r} is not a DuckDB memory size (e.g. 1GB)") from e
    _budget.clear()
    _budget["memory"] = limit
    _temp_settings(con)
    if exists and not lean:
        try:
            check_integrity(con, path)
        except BaseException:
            con.close()
            raise
    if not read_only:
        _secure(path)
        try:
            if not lean:  # a lean open follows a full one by the same process: migrated already
                migrate(con, path)
            from pacscopy.journal import merge_dead

            merge_dead(con, path)  # the records of sends that ended or died, before anyone reads
        except BaseException:
            con.close()
            raise
    else:
        _require_pacscopy(con, path)
    return con


#: The share of the free space on the temporary folder's disk DuckDB may fill when ``$PACSCOPY_TEMP_LIMIT``
#: is unset (DuckDB's own default is 90 %): the rest is left for the index, which grows in the same
#: transaction (its write-ahead log, then the checkpoint), and for everything else on that disk.
TEMP_SHARE = 0.5


def _temp_settings(con: duckdb.DuckDBPyConnection) -> None:
    """Where DuckDB spills and how much it may put there: ``$PACSCOPY_TEMP_DIRECTORY``, ``$PACSCOPY_TEMP_LIMIT``
    (default: :data:`TEMP_SHARE` of the free space on that folder's disk when the index is opened)."""
    for env, setting in (("PACSCOPY_TEMP_DIRECTORY", "temp_directory"), ("PACSCOPY_TEMP_LIMIT", "max_temp_directory_size")):
        value = os.environ.get(env)
        if not value:
            continue
        try:
            # setting names are pacscopy's own constants; the value is bound
            con.execute(f"SET {setting} = $v", {"v": value})
        except duckdb.Error as e:
            con.close()
            what = "a folder DuckDB can write" if setting == "temp_directory" else "a DuckDB size (e.g. 20GB)"
            raise IndexFileError(f"{env}={value!r} is not {what}") from e
        _budget[setting.replace("max_temp_directory_size", "temp_limit")] = value
    _budget["temp_limit_size"] = os.environ.get("PACSCOPY_TEMP_LIMIT") or ""
    if not os.environ.get("PACSCOPY_TEMP_DIRECTORY"):
        _budget["temp_directory"] = str(_setting(con, "temp_directory"))
    if not os.environ.get("PACSCOPY_TEMP_LIMIT"):
        free = _free_bytes(str(_setting(con, "temp_directory")))
        if free is not None:
            cap = max(int(free * TEMP_SHARE), 1_000_000)
            con.execute("SET max_temp_directory_size = $v", {"v": f"{cap // 1_000_000}MB"})
            _budget["temp_limit_size"] = f"{cap // 1_000_000}MB"
            _budget["temp_limit"] = (f"{_size(cap)} ({TEMP_SHARE:.0%} of the {_size(free)} free on that disk "
                                     "when the command started)")


def _setting(con: duckdb.DuckDBPyConnection, name: str) -> object:
    row = con.execute("SELECT current_setting($n)", {"n": name}).fetchone()
    return row[0] if row else None


def _free_bytes(folder: str) -> int | None:
    """The free space (for an unprivileged writer) on the disk holding ``folder`` or, while it does not exist
    yet, its nearest existing parent; None if unknown."""
    p = os.path.abspath(folder)
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def _size(n: float) -> str:
    """A byte count for a message: '12.3 GB', '850 MB'."""
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


_TABLE_DDL = re.compile(r"\b(CREATE|DROP)\s+TABLE\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(\w+)"
                        r"|\bALTER\s+TABLE\s+(\w+)\s+RENAME\s+TO\s+(\w+)", re.IGNORECASE)


def _expected_tables(applied: set[int]) -> list[str]:
    """The tables the applied migrations leave (created, not dropped or renamed since)."""
    out: list[str] = []
    for version, _, sql in migrations():
        if version not in applied:
            continue
        for m in _TABLE_DDL.finditer(re.sub(r"--[^\n]*", "", sql)):
            if m.group(1) and m.group(1).upper() == "CREATE":
                out.append(m.group(2))
            elif m.group(1):
                out = [t for t in out if t != m.group(2)]
            else:
                out = [m.group(4) if t == m.group(3) else t for t in out]
    return out


def check_integrity(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Refuse a damaged index, cheaply, on open (:class:`IndexFileError` saying how to recover).

    DuckDB verifies a block's checksum only when it reads the block, so a truncated
    or damaged file can answer queries for a while. This checks that the file holds
    every block DuckDB's header counts (a cut copy does not), that the schema version
    is one this pacscopy knows, that every table the applied migrations create
    exists, and reads the first rows of each table (their blocks' checksums).
    Damage deeper inside a big table is still only found when it is read.
    """
    def damaged(why: str) -> IndexFileError:
        return IndexFileError(f"index {path} is damaged ({why}): {RECOVER}")

    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "schema_migrations" not in tables:
            return  # not (yet) a pacscopy index: migrate() or _require_pacscopy() say so
        if not os.path.exists(path + ".wal"):  # WAL changes are not in the file yet
            # every used block is a whole block at its own offset: the file holds at least that many
            size = con.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchone()
            if size is not None and os.path.getsize(path) < size[0] * size[1]:
                raise damaged(f"the file is {os.path.getsize(path)} bytes, but DuckDB's header counts {size[1]} "
                              f"blocks of {size[0]} bytes in use: it was cut short")
        done = applied_versions(con)
        known = migrations()
        newest = max((v for v, _, _ in known), default=0)
        if done and max(done) > newest:
            raise IndexFileError(f"index {path} has schema version {max(done)}, newer than this pacscopy "
                                 f"knows ({newest}): upgrade pacscopy")
        expected = _expected_tables(done)
        missing = [t for t in expected if t not in tables]
        if missing:
            raise damaged(f"tables missing: {', '.join(missing)}")
        # one statement (a poll opens the index every second): each table's first row, every column read
        # (the row as text); identifiers from pacscopy's own migration files, not user input
        con.execute(" UNION ALL ".join(f'SELECT t::VARCHAR FROM (SELECT * FROM "{t}" LIMIT 1) t'
                                       for t in ["schema_migrations", *expected])).fetchall()
    except duckdb.OutOfMemoryException as e:
        raise IndexFileError(f"index {path}: the memory budget is too small to open it (PACSCOPY_MEMORY_LIMIT="
                             f"{os.environ.get('PACSCOPY_MEMORY_LIMIT') or 'unset'}): set it to 1GB or more") from e
    except duckdb.Error as e:
        raise damaged(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__) from None


def _require_pacscopy(con: duckdb.DuckDBPyConnection, path: str) -> None:
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "schema_migrations" not in tables:
        raise IndexFileError(f"{path} is a DuckDB file but not a pacscopy index (no schema_migrations table)")


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """ROLLBACK after a failure, keeping the failure as the error.

    When a COMMIT fails (a full disk: the WAL cannot be written) DuckDB has
    already ended the transaction, and a ROLLBACK would raise "cannot rollback -
    no transaction is active", hiding the real cause. Call this in an ``except``
    block, then re-raise. (:func:`transaction` does.)
    """
    try:
        con.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass  # already ended by DuckDB (a failed COMMIT, an interrupted statement): the error being handled says why


def migrate(con: duckdb.DuckDBPyConnection, path: str = "index") -> list[int]:
    """Apply every migration not yet recorded; return the versions applied."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "schema_migrations" not in tables:
        if tables:
            raise IndexFileError(
                f"{path} is a DuckDB file with other tables but not a pacscopy index: refusing to touch it"
            )
        con.execute(load_sql("ops/index/create_migrations"))
    done = applied_versions(con)
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        with transaction(con):
            con.execute(sql)
            con.execute(load_sql("ops/index/record_migration"), {"version": version, "name": name})
        log.info("applied schema migration %04d_%s", version, name)
        applied.append(version)
    return applied


def run(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """Run the named SQL file with ``$parameters``."""
    return con.execute(load_sql(name), params or {})


T = TypeVar("T")


def row_reader(cur: duckdb.DuckDBPyConnection, row: type[T]) -> Callable[[Sequence[Any]], T]:
    """Turn ``cur``'s result rows into ``row`` objects (a NamedTuple or dataclass) by column name.

    Never by position: a column added to a query cannot shift the fields after
    it. Columns ``row`` does not name are left out; a field the query lacks is an error.
    """
    cols = [d[0] for d in cur.description or ()]
    names = getattr(row, "_fields", None) or [f.name for f in dataclasses.fields(row)]  # type: ignore[arg-type]
    missing = [n for n in names if n not in cols]
    if missing:
        raise QueryError(f"the query has no column {missing[0]!r} for {row.__name__}")
    pick = [cols.index(n) for n in names]
    return lambda r: row(*(r[i] for i in pick))


def fetch(con: duckdb.DuckDBPyConnection, name: str, row: type[T], params: dict[str, Any] | None = None) -> list[T]:
    """Run the named SQL file; its rows as ``row`` objects, read by column name (:func:`row_reader`)."""
    cur = run(con, name, params)
    make = row_reader(cur, row)
    return [make(r) for r in cur.fetchall()]


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """``BEGIN`` ... ``COMMIT``; ``ROLLBACK`` (:func:`rollback`) if anything, also Ctrl-C, interrupts the block."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        rollback(con)
        raise
    con.execute("COMMIT")


def run_script(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None) -> None:
    """Run a multi-statement SQL file; ``$parameters`` are bound per statement."""
    run_statements(con, load_sql(name), params)


def run_statements(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> None:
    """Run the statements of a SQL script's text, binding to each the ``$parameters`` it names."""
    for stmt in split_statements(sql):
        used = {k: v for k, v in (params or {}).items() if f"${k}" in stmt}
        con.execute(stmt, used)


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    """The schema versions recorded in the index's ``schema_migrations``."""
    return {r[0] for r in con.execute(load_sql("ops/index/applied_versions")).fetchall()}


def split_statements(sql: str) -> list[str]:
    """Split a SQL script on semicolons outside quotes and comments."""
    out, buf, quote, i = [], [], None, 0
    while i < len(sql):
        ch = sql[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = len(sql) if j < 0 else j
            buf.append(sql[i:j])
            i = j
            continue
        elif ch == ";":
            stmt = "".join(buf).strip()
            if _has_code(stmt):
                out.append(stmt)
            buf = []
        else:
            buf.append(ch)
        i += 1
    stmt = "".join(buf).strip()
    if _has_code(stmt):
        out.append(stmt)
    return out


def _has_code(stmt: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in stmt.splitlines())


def named_queries() -> dict[str, Path]:
    """Queries shipped in ``sql/queries`` and checks in ``sql/checks``, by name."""
    out: dict[str, Path] = {}
    for sub in ("queries", "checks"):
        d = sql_dir() / sub
        if d.is_dir():
            for p in sorted(d.glob("*.sql")):
                out.setdefault(p.stem, p)
    return out


def description(sql: str) -> str:
    """First comment line of a SQL file: its one-line description."""
    for line in sql.splitlines():
        line = line.strip()
        if line.startswith("--"):
            return line.lstrip("- ").strip()
        if line:
            break
    return ""


def query(
    path: str | None, sql: str, params: dict[str, Any] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run user SQL read-only and without file access; return (column names, rows).

    The index is opened read-only, and DuckDB's ``enable_external_access`` is
    switched off first (it cannot be switched back on by the SQL): ``COPY ... TO``,
    ``EXPORT DATABASE``, ``INSTALL``/``LOAD`` and ``read_csv('/any/file')`` are
    refused, so user SQL can neither overwrite files nor fetch anything.
    Exports go through ``pacscopy query --out FILE``.
    """
    con = open_index(path, read_only=True)
    try:
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            statements = split_statements(sql)
            if not statements:
                raise QueryError("the SQL is empty")
            cur = None
            for stmt in statements:
                cur = con.execute(stmt, params or {}) if params else con.execute(stmt)
            assert cur is not None
            if cur.description is None:
                return [], []
            cols = [d[0] for d in cur.description]
            return cols, cur.fetchall()
        except duckdb.Error as e:
            first = str(e).strip().splitlines()[0]
            if "read-only" in first.lower() or "read only" in first.lower():
                raise QueryError(f"query is read-only: the index was not changed ({first})") from None
            if isinstance(e, duckdb.PermissionException) or "disabled by configuration" in first.lower() \
                    or "lock_configuration" in first.lower() or "configuration has been locked" in first.lower():
                raise QueryError("query has no access to files, extensions or settings (COPY TO, EXPORT "
                                 "DATABASE, INSTALL, read_csv of a file...): write results with "
                                 f"'pacscopy query ... --out FILE' ({first})") from None
            raise QueryError(f"SQL error: {first}") from None
    finally:
        con.close()


#: The name under which :func:`insert_frame` shows its columns to the SQL it runs.
FRAME = "frame"


def insert_frame(con: duckdb.DuckDBPyConnection, name: str, columns: Mapping[str, Sequence[Any]], **params: Any) -> None:
    """Bulk write: the columns (equal-length sequences) shown to the SQL file ``name`` as the relation
    ``frame`` (NumPy arrays DuckDB scans in place), ``params`` bound as parameters.

    Binding each column as a list parameter to ``unnest`` (:func:`insert_columns`) converts every
    value into a DuckDB list first: a scan's 20,000 rows of 40 columns took 0.47 s that way and
    0.14 s as arrays (BENCHMARKS.md, "Staging a scan's rows as arrays"). A column of integers is
    handed over as a masked int64 array (DuckDB would guess a narrower type from the first values of
    an object array and fail on a larger one later); the others as object arrays (str, bytes, bool,
    None: DuckDB types them by their values).
    """
    con.register(FRAME, {k: _array(v) for k, v in columns.items()})
    try:
        con.execute(load_sql(name), params)
    finally:
        con.unregister(FRAME)


def _array(values: Sequence[Any]) -> Any:
    """``values`` as a NumPy array for :func:`insert_frame`."""
    import numpy as np

    first = next((v for v in values if v is not None), None)
    if isinstance(first, int) and not isinstance(first, bool):
        return np.ma.masked_array([0 if v is None else v for v in values], mask=[v is None for v in values],
                                  dtype=np.int64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def insert_columns(con: duckdb.DuckDBPyConnection, name: str, columns: Mapping[str, Sequence[Any]], **extra: Any) -> None:
    """Bulk write: each column a list, bound as one ``$parameter`` and unnested in SQL."""
    params: dict[str, Any] = {k: list(v) for k, v in columns.items()}
    params.update(extra)
    con.execute(load_sql(name), params)
