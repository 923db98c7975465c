"""Connect to the shared books in PostgreSQL, migrate their schema, run named SQL.

The schema lives in ``sql/postgres/schema/NNNN_name.sql``, applied once each, in one
transaction, and recorded in ``pacscopy_schema`` (like the DuckDB index's migrations);
statements live in ``sql/postgres/ops/<name>.sql`` with ``$name`` parameters, bound
by psycopg (never formatted in). psycopg is an extra (``pacscopy[postgres]``): the
embedded default needs no server and no driver.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from pacscopy.errors import BooksError
from pacscopy.index import sql_dir

if TYPE_CHECKING:
    import psycopg

_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


def redact(url: str) -> str:
    """``url`` without its password (for messages and for the local index, which never holds it)."""
    try:
        u = urllib.parse.urlsplit(url)
    except ValueError:
        return "<a malformed URL>"
    if u.password is None:
        return url
    host = u.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (u.username or "") + "@" + host + (f":{u.port}" if u.port else "")
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise BooksError("shared books need PostgreSQL's driver: pip install 'pacscopy[postgres]'") from None
    return psycopg


def books_error(url: str, e: Exception, doing: str = "") -> BooksError:
    """One line for a PostgreSQL failure: what, where (without the password), and what to do."""
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    where = redact(url)
    psycopg = _driver()
    if isinstance(e, psycopg.OperationalError):
        hint = ("check that PostgreSQL runs (scripts/postgres start DIR) and the URL; give the password in the "
                "URL (--books), in $PGPASSWORD or in ~/.pgpass")
        return BooksError(f"books {where} unreachable{' while ' + doing if doing else ''}: {first}; "
                          f"what was recorded is kept: {hint}")
    return BooksError(f"books {where}{': ' + doing if doing else ''}: {first}")


def connect(url: str, *, migrate_schema: bool = False, timeout: float = 10.0) -> psycopg.Connection[Any]:
    """A connection to the books at ``url`` (libpq URL); with ``migrate_schema`` apply new schema files."""
    psycopg = _driver()
    if not url.startswith(("postgresql://", "postgres://")):
        raise BooksError(f"books URL {redact(url)!r} is not a PostgreSQL URL (postgresql://USER@HOST:PORT/DB)")
    try:
        con = psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True,
                              application_name="pacscopy")
    except psycopg.Error as e:
        raise books_error(url, e, "connecting") from None
    except ValueError as e:  # a malformed URL or option
        raise BooksError(f"books URL {redact(url)!r}: {e}") from None
    if migrate_schema:
        try:
            migrate(con)
        except psycopg.Error as e:
            con.close()
            raise books_error(url, e, "migrating the schema") from None
    return con


def migrations() -> list[tuple[int, str, str]]:
    """The books' schema migrations as (version, name, sql), in order."""
    out = []
    for p in sorted((sql_dir() / "postgres" / "schema").iterdir()):
        m = _MIGRATION.match(p.name)
        if m:
            out.append((int(m.group(1)), m.group(2), p.read_text(encoding="utf-8")))
    return out


def migrate(con: psycopg.Connection[Any]) -> list[int]:
    """Apply every schema file not yet recorded in ``pacscopy_schema``; one transaction each."""
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(7013001)")  # two hosts migrating at once: one after the other
        con.execute("CREATE TABLE IF NOT EXISTS pacscopy_schema (version integer PRIMARY KEY, name text NOT NULL, "
                    "applied timestamptz NOT NULL DEFAULT now())")
        done = {r[0] for r in con.execute("SELECT version FROM pacscopy_schema").fetchall()}
        applied = []
        for version, name, sql in migrations():
            if version in done:
                continue
            con.execute(sql.encode())
            con.execute("INSERT INTO pacscopy_schema (version, name) VALUES (%s, %s)", (version, name))
            applied.append(version)
    newest = max((v for v, _, _ in migrations()), default=0)
    if done and max(done) > newest:
        raise BooksError(f"the books have schema version {max(done)}, newer than this pacscopy knows ({newest}): "
                         "upgrade pacscopy on this host")
    return applied


@cache
def load_sql(name: str) -> str:
    """``sql/postgres/ops/<name>.sql`` with its ``$name`` parameters in psycopg's ``%(name)s`` form."""
    path = sql_dir() / "postgres" / "ops" / f"{name}.sql"
    text = path.read_text(encoding="utf-8")
    return _PARAM.sub(r"%(\1)s", text.replace("%", "%%"))


def run(con: psycopg.Connection[Any], name: str, params: dict[str, Any] | None = None) -> psycopg.Cursor[Any]:
    """Run the named statement with ``$parameters``."""
    return con.execute(load_sql(name).encode(), params or {})


@contextmanager
def guarded(url: str, doing: str) -> Iterator[None]:
    """Turn a PostgreSQL failure inside the block into one :class:`BooksError` line."""
    psycopg = _driver()
    try:
        yield
    except psycopg.Error as e:
        raise books_error(url, e, doing) from None
