"""The DuckDB index: open it, migrate it, load named SQL, run it with parameters.

The index is a plain DuckDB file that a PACS administrator can open with the
``duckdb`` CLI. Its schema lives in ``sql/schema/NNNN_name.sql``; each file is
applied once, in one transaction, and recorded in ``schema_migrations``. All
other SQL lives in named files under ``sql/`` too, and values always travel
as ``$parameters``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pacscopy.errors import IndexFileError, QueryError

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

DEFAULT_INDEX = "pacscopy.duckdb"
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


def default_index_path() -> str:
    return os.environ.get("PACSCOPY_INDEX") or DEFAULT_INDEX


def _connect(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    # Imported here, not at module level: importing duckdb takes ~0.07 s, and a
    # scan starts its workers and its walk before it needs the index.
    import duckdb

    try:
        return duckdb.connect(path, read_only=read_only)
    except duckdb.IOException as e:
        msg = str(e).splitlines()[0]
        if "lock" in msg.lower():
            raise IndexFileError(
                f"index {path} is in use by another pacscopy or duckdb process: wait for it or close it"
            ) from None
        raise IndexFileError(f"{path} is not a pacscopy index (DuckDB says: {msg})") from None
    except duckdb.Error as e:
        raise IndexFileError(f"cannot open index {path}: {str(e).splitlines()[0]}") from None


def _secure(path: str) -> None:
    """The index holds patient data: readable by its owner only (also its WAL)."""
    for p in (path, path + ".wal"):
        try:
            os.chmod(p, 0o600)
        except FileNotFoundError:
            pass


def open_index(path: str | None = None, *, create: bool = False, read_only: bool = False,
               memory_limit: str = "1GB", threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """Open (and with ``create``, create and migrate) the index at ``path``.

    Without ``create`` a missing file is an error rather than a new empty
    index: a typo in ``--index`` must not silently start a second migration.
    ``memory_limit`` is DuckDB's limit unless ``$PACSCOPY_MEMORY_LIMIT`` sets one;
    ``threads``, if given, DuckDB's number of threads (default: one per core).
    """
    path = path or default_index_path()
    exists = os.path.exists(path)
    if not exists and not create:
        raise IndexFileError(f"no index at {path}: run 'pacscopy scan ROOT --index {path}' first")
    if os.path.isdir(path):
        raise IndexFileError(f"{path} is a folder, not an index file")
    if not exists:
        old = os.umask(0o077)
        try:
            con = _connect(path, read_only=False)
        finally:
            os.umask(old)
    else:
        con = _connect(path, read_only=read_only)
    # Bounded memory whatever the archive size: DuckDB spills to disk beyond this.
    limit = os.environ.get("PACSCOPY_MEMORY_LIMIT") or memory_limit
    import duckdb

    try:
        con.execute("SET memory_limit = $limit", {"limit": limit})
        con.execute("SET preserve_insertion_order = false")
        if threads is not None:
            con.execute("SET threads = $threads", {"threads": threads})
    except duckdb.Error as e:
        raise IndexFileError(f"PACSCOPY_MEMORY_LIMIT={limit!r} is not a DuckDB memory size (e.g. 1GB)") from e
    if not read_only:
        _secure(path)
        migrate(con, path)
    else:
        _require_pacscopy(con, path)
    return con


def _require_pacscopy(con: duckdb.DuckDBPyConnection, path: str) -> None:
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "schema_migrations" not in tables:
        raise IndexFileError(f"{path} is a DuckDB file but not a pacscopy index (no schema_migrations table)")


def migrate(con: duckdb.DuckDBPyConnection, path: str = "index") -> list[int]:
    """Apply every migration not yet recorded; return the versions applied."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "schema_migrations" not in tables:
        if tables:
            raise IndexFileError(
                f"{path} is a DuckDB file with other tables but not a pacscopy index: refusing to touch it"
            )
        con.execute(load_sql("ops/index/create_migrations"))
    done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, name, sql in migrations():
        if version in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql)
            con.execute(load_sql("ops/index/record_migration"), {"version": version, "name": name})
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        log.info("applied schema migration %04d_%s", version, name)
        applied.append(version)
    return applied


def run(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """Run the named SQL file with ``$parameters``."""
    return con.execute(load_sql(name), params or {})


T = TypeVar("T")


def fetch(con: duckdb.DuckDBPyConnection, name: str, row: Callable[..., T],
          params: dict[str, Any] | None = None) -> list[T]:
    """Run the named SQL file; each result row becomes ``row(**{column: value})``.

    Rows are read by column name, never by position: a column added to the
    query cannot shift the fields after it, and one the row type does not
    know fails loudly.
    """
    cur = run(con, name, params)
    cols = [d[0] for d in cur.description]
    return [row(**dict(zip(cols, r))) for r in cur.fetchall()]


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """``BEGIN`` ... ``COMMIT``; ``ROLLBACK`` if anything (also Ctrl-C) interrupts the block."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        import duckdb

        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # an interrupted statement already ended its transaction
        raise
    con.execute("COMMIT")


def run_script(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None) -> None:
    """Run a multi-statement SQL file; ``$parameters`` are bound per statement."""
    for stmt in split_statements(load_sql(name)):
        used = {k: v for k, v in (params or {}).items() if f"${k}" in stmt}
        con.execute(stmt, used)


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
    """Run user SQL read-only; return (column names, rows)."""
    con = open_index(path, read_only=True)
    import duckdb

    try:
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
            raise QueryError(f"SQL error: {first}") from None
    finally:
        con.close()


def insert_columns(con: duckdb.DuckDBPyConnection, name: str, columns: Mapping[str, Sequence[Any]], **extra: Any) -> None:
    """Bulk write: each column a list, bound as one ``$parameter`` and unnested in SQL."""
    params: dict[str, Any] = {k: list(v) for k, v in columns.items()}
    params.update(extra)
    con.execute(load_sql(name), params)
