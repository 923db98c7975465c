"""The shared books of one migration in PostgreSQL: set up, join, publish the plan, shares, totals.

What lives where (README, "Several machines"): each host keeps its own DuckDB index
(its files, findings, plan and its own transfers, as on one machine); PostgreSQL holds
what the hosts must share: the migration's identity, the hosts, each host's plan, the
claims (who sends which instance to which target), the shares and every host's transfers.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import duckdb

from pacscopy import index as idx
from pacscopy.errors import BooksError, InputError
from pacscopy.pg.connect import connect, guarded, redact, run

if TYPE_CHECKING:
    import psycopg


@dataclass
class Link:
    """What the local index records about the books it is linked to (table ``books_link``)."""

    migration_id: str
    migration_name: str
    books_url: str  # without the password
    host_name: str
    host_id: int


class Migration(NamedTuple):
    migration_id: str
    name: str
    created: dt.datetime


def default_host() -> str:
    return socket.gethostname() or "host"


def init(url: str, name: str) -> Migration:
    """Create the books' schema and the migration named ``name``; refused when the books hold one already."""
    if not name.strip():
        raise InputError("--name: give the migration a name")
    with connect(url, migrate_schema=True) as con, guarded(url, "creating the migration"):
        row = run(con, "init_migration", {"migration_id": str(uuid.uuid4()), "name": name}).fetchone()
        if row is None:
            m = migration(con, url)
            raise BooksError(f"books {redact(url)} already hold migration {m.name!r} ({m.migration_id}): "
                             "each migration needs its own database; join it with 'pacscopy books join'")
        return migration(con, url)


def migration(con: psycopg.Connection[Any], url: str) -> Migration:
    """The migration the books at ``url`` are for (:class:`BooksError` if ``books init`` was never run)."""
    with guarded(url, "reading the migration"):
        tables = con.execute("SELECT to_regclass('migration') IS NOT NULL").fetchone()
        row = run(con, "migration").fetchone() if tables and tables[0] else None
    if row is None:
        raise BooksError(f"books {redact(url)} hold no migration: run 'pacscopy books init URL --name NAME' once")
    return Migration(*row)


def read_link(con: duckdb.DuckDBPyConnection) -> Link | None:
    """The link recorded in the local index, if any."""
    row = idx.run(con, "ops/books/link").fetchone()
    return Link(*row) if row else None


def join(url: str, index_con: duckdb.DuckDBPyConnection, index_path: str, host: str | None = None) -> Link:
    """Link the local index to the books at ``url`` as host ``host``; refuse another migration's books.

    A host name is taken once: a second index joining under a name already taken is refused (give
    ``--host``); the index that holds that name may join again (after a restore, a new password).
    """
    name = host or default_host()
    old = read_link(index_con)
    with connect(url, migrate_schema=True) as con:
        m = migration(con, url)
        if old is not None and old.migration_id != m.migration_id:
            raise BooksError(f"this index belongs to migration {old.migration_name!r} ({old.migration_id}), "
                             f"the books at {redact(url)} to {m.name!r} ({m.migration_id}): refused")
        with guarded(url, "joining"):
            row = con.execute("SELECT host_id, index_path FROM hosts WHERE name = %s", (name,)).fetchone()
            if row is not None and (old is None or old.host_id != row[0]):
                raise BooksError(f"host name {name!r} is taken in migration {m.name!r} (index {row[1]}): "
                                 "give this host another --host NAME")
            r = run(con, "join_host", {"name": name, "index_path": index_path}).fetchone()
            assert r is not None
            host_id = int(r[0])
    link = Link(m.migration_id, m.name, redact(url), name, host_id)
    with idx.transaction(index_con):
        idx.run(index_con, "ops/books/unlink")
        idx.run(index_con, "ops/books/record_link", {
            "migration_id": link.migration_id, "migration_name": link.migration_name, "books_url": link.books_url,
            "host_name": link.host_name, "host_id": link.host_id})
    return link


def books_url(link: Link | None, given: str | None) -> str:
    """The URL to use: ``--books`` if given, else the linked one (:class:`BooksError` if neither)."""
    if given:
        return given
    if link is None:
        raise BooksError("no books: give --books URL, or link the index with 'pacscopy books join URL'")
    return link.books_url


def open_linked(index_con: duckdb.DuckDBPyConnection, given: str | None) -> tuple[psycopg.Connection[Any], Link, str]:
    """Connect to this index's books and check they are its migration's; (connection, link, URL)."""
    link = read_link(index_con)
    if link is None:
        raise BooksError("this index is not linked to shared books: run 'pacscopy books join URL' first")
    url = books_url(link, given)
    con = connect(url, migrate_schema=True)
    try:
        m = migration(con, url)
        if m.migration_id != link.migration_id:
            raise BooksError(f"this index belongs to migration {link.migration_name!r} ({link.migration_id}), "
                             f"the books at {redact(url)} to {m.name!r} ({m.migration_id}): refused")
        with guarded(url, "checking this host"):
            row = con.execute("SELECT name FROM hosts WHERE host_id = %s", (link.host_id,)).fetchone()
        if row is None or row[0] != link.host_name:
            raise BooksError(f"host {link.host_name!r} is not in the books at {redact(url)}: "
                             "run 'pacscopy books join URL' again")
    except BaseException:
        con.close()
        raise
    return con, link, url


def plan_digest(index_con: duckdb.DuckDBPyConnection) -> str:
    """A digest of the local plan as :func:`publish` publishes it (``sql/ops/books/plan_digest.sql``)."""
    rows_sql = idx.load_sql("ops/books/plan_rows").strip().rstrip(";")
    row = index_con.execute(f"WITH plan_rows AS ({rows_sql})\n{idx.load_sql('ops/books/plan_digest')}").fetchone()
    assert row is not None
    return str(row[0])


def plan_changed(con: psycopg.Connection[Any], url: str, link: Link, index_con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the local plan differs from what this host last published (or the books keep no digest of it)."""
    with guarded(url, "reading this host's published plan"):
        row = run(con, "plan_digest", {"host_id": link.host_id}).fetchone()
    return row is None or row[0] != plan_digest(index_con)


def publish(con: psycopg.Connection[Any], url: str, link: Link, index_con: duckdb.DuckDBPyConnection,
            *, batch: int = 10_000) -> int:
    """Replace this host's plan in the books with the local plan, streamed (COPY, bounded memory).

    One transaction: the other hosts (their status, reconcile; their claims do not read the plan) see
    the earlier plan or this one whole, so a plan may be published while they send. ``index_con``
    must hold the index read-write (nothing changes the plan while it is read).
    """
    digest = plan_digest(index_con)
    cur = index_con.cursor()
    try:
        cur.execute(idx.load_sql("ops/books/plan_rows"))
        n = 0
        with guarded(url, "publishing the plan"), con.transaction():
            run(con, "lock_publish", {"host_id": link.host_id})
            run(con, "plan_clear", {"host_id": link.host_id})
            with con.cursor().copy("COPY plan (host_id, sop_instance_uid, study_instance_uid, sop_class_uid, "
                                   "disposition, reason, size, dataset_xxh3) FROM STDIN") as copy:
                while True:
                    rows = cur.fetchmany(batch)
                    if not rows:
                        break
                    for r in rows:
                        copy.write_row((link.host_id, *r))
                    n += len(rows)
            run(con, "plan_published", {"host_id": link.host_id, "instances": n, "digest": digest})
    finally:
        cur.close()
    return n


def publish_index(index_path: str, given: str | None) -> tuple[Link, int]:
    """``books publish``: this host's plan from the index at ``index_path`` into its books; (link, instances)."""
    with idx.open_index(index_path) as con:
        return _publish_linked(con, given)


def join_index(url: str, index_path: str, host: str | None = None) -> tuple[Link, int]:
    """``books join``: link the index at ``index_path`` to the books at ``url`` and publish its plan."""
    with idx.open_index(index_path) as con:
        join(url, con, os.path.abspath(index_path), host)
        return _publish_linked(con, url)


def _publish_linked(index_con: duckdb.DuckDBPyConnection, given: str | None) -> tuple[Link, int]:
    pg, link, url = open_linked(index_con, given)
    with pg:
        return link, publish(pg, url, link, index_con)


# -- shares --------------------------------------------------------------------------


class Shard(NamedTuple):
    """``--shard K/N``: this host sends the studies whose hash is K-1 modulo N."""

    k: int
    n: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            k_s, n_s = text.split("/")
            k, n = int(k_s), int(n_s)
        except ValueError:
            raise InputError(f"--shard {text!r}: give K/N, e.g. 1/3") from None
        if not (1 <= k <= n):
            raise InputError(f"--shard {text!r}: K must be between 1 and N")
        return cls(k, n)

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"

    def overlaps(self, other: Shard) -> bool:
        """Whether some study hash falls in both shares (hash mod n = k-1 for both: by the CRT,
        exactly when k-1 and k'-1 agree modulo gcd(n, n'))."""
        g = math.gcd(self.n, other.n)
        return (self.k - 1) % g == (other.k - 1) % g

    def where(self) -> str:
        """The queue predicate (DuckDB SQL over the queue's columns) selecting this share's studies.

        The hash: the first 8 hex digits of md5(StudyInstanceUID) as a number, so that every host
        (any DuckDB version) puts a study in the same share. Constants only, no user text.
        """
        return (f"((('0x' || md5(coalesce(study_instance_uid, '')))[1:10])::UBIGINT % {self.n:d}) = {self.k - 1:d}")


def register_share(con: psycopg.Connection[Any], url: str, link: Link, target: str, shard: Shard | None) -> None:
    """Record this host's share of ``target``; refuse one that overlaps another host's."""
    with guarded(url, "registering the share"), con.transaction():
        run(con, "lock_target", {"target": target})
        if shard is None:
            run(con, "share_drop", {"target": target, "host_id": link.host_id})
            return
        for _, name, k, n in run(con, "shares_for_target", {"target": target, "host_id": link.host_id}).fetchall():
            if shard.overlaps(Shard(k, n)):
                raise BooksError(f"--shard {shard} overlaps host {name!r}'s share {k}/{n} of {target}: refused "
                                 "(shares of one target must not overlap; see 'pacscopy status --books')")
        run(con, "share_register", {"target": target, "host_id": link.host_id, "k": shard.k, "n": shard.n})


def release(url: str, host: str, target: str | None) -> int:
    """Release the claims host ``host`` holds but has not stored (a host gone for good); how many."""
    with connect(url) as con, guarded(url, "releasing claims"):
        migration(con, url)
        if con.execute("SELECT 1 FROM hosts WHERE name = %s", (host,)).fetchone() is None:
            raise BooksError(f"no host {host!r} in the books at {redact(url)} (see 'pacscopy status --books')")
        row = run(con, "claims_release_host", {"host": host, "target": target}).fetchone()
    return int(row[0]) if row else 0


# -- the whole migration -------------------------------------------------------------

#: The final states of an instance over the whole migration, in the order shown.
STATES = ("stored", "stored_by_two_hosts", "stored_unplanned", "sending", "failed", "left", "excluded")


class HostLine(NamedTuple):
    name: str
    plan_instances: int | None
    plan_published: dt.datetime | None
    last_seen: dt.datetime
    stored: int
    sending: int
    last_transfer: dt.datetime | None
    share: str | None
    running: bool


@dataclass
class MigrationStatus:
    """Every instance of every host's plan, counted once, by its state for one target."""

    migration: Migration
    url: str
    target: str
    states: dict[str, int]
    hosts: list[HostLine]
    as_of: dt.datetime

    @property
    def in_plan(self) -> int:
        return sum(v for k, v in self.states.items() if k != "stored_unplanned")

    @property
    def complete(self) -> bool:
        """Every instance some host plans to send is stored on the target, by exactly one host."""
        return not any(self.states.get(s) for s in ("stored_by_two_hosts", "sending", "failed", "left"))


def status(url: str, target: str) -> MigrationStatus:
    """The whole migration's progress towards ``target`` (any host may ask)."""
    with connect(url) as con:
        m = migration(con, url)
        with guarded(url, "reading the status"), con.transaction():
            con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot for every figure
            now = con.execute("SELECT now()").fetchone()
            states = {r[0]: int(r[1]) for r in run(con, "status_totals", {"target": target}).fetchall()}
            hosts = [HostLine(*r) for r in run(con, "status_hosts", {"target": target}).fetchall()]
    assert now is not None
    return MigrationStatus(m, redact(url), target, {s: states.get(s, 0) for s in STATES}, hosts, now[0])


class Problem(NamedTuple):
    sop_instance_uid: str
    state: str
    host: str | None
    why: str | None


@dataclass
class MigrationReconcile:
    status: MigrationStatus
    problems: list[Problem]  # the first ones (limit)
    excluded: list[tuple[str, int]]


def reconcile(url: str, target: str, limit: int = 50) -> MigrationReconcile:
    """Account for every instance of the whole migration on ``target``: stored once, or why not."""
    st = status(url, target)
    with connect(url) as con, guarded(url, "reconciling"):
        problems = [Problem(*r) for r in run(con, "final_problems", {"target": target, "limit": limit}).fetchall()]
        excluded = [(r[0] or "", int(r[1])) for r in run(con, "final_excluded", {"target": target}).fetchall()]
    return MigrationReconcile(st, problems, excluded)


@dataclass
class MigrationReport:
    migration: Migration
    url: str
    dispositions: list[tuple[str | None, str, int, int]]  # host (None: all hosts, each instance once), disposition, instances, bytes
    targets: list[MigrationStatus]


def report(url: str) -> MigrationReport:
    """The whole migration: every host's plan by disposition, and each target's states."""
    with connect(url) as con:
        m = migration(con, url)
        with guarded(url, "reading the report"):
            disp = [(r[0], r[1], int(r[2]), int(r[3])) for r in run(con, "report_dispositions").fetchall()]
            targets = [r[0] for r in run(con, "report_targets").fetchall()]
    return MigrationReport(m, redact(url), disp, [status(url, t) for t in targets])
