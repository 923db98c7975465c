"""The books of a send shared through PostgreSQL: claim before sending, record every flush in both places.

:class:`PgBooks` wraps the local books (:mod:`pacscopy.send.books`: local status, verify and
reconcile keep working on each host) and adds the shared ones:

- :meth:`claim` (the feeder thread, per batch): ``INSERT ... ON CONFLICT DO NOTHING RETURNING``
  in ``claims``; only what comes back is sent, so no instance is sent by two hosts. While it sends, a
  host holds a session-level advisory lock (``host_sending``) on its claim connection; a claim left
  'sending' by a host that holds none (its send was killed, its machine lost: PostgreSQL released the
  lock with the session) is free to take, by that host again or by another: no ``books release``.
- :meth:`record` (the main thread, per flush): the local books first (durable: kill -9 loses
  nothing recorded), then the transfers and the claims' states in PostgreSQL in one transaction.
  If PostgreSQL is gone, the rows stay recorded locally, claiming stops (no new instance is sent),
  the run ends as the workers finish what they hold, and the send fails with one line (exit 2).
  The next send first catches up (:func:`catch_up`): claims this host left 'sending' that the local
  books show stored are recorded as stored.

Claims and records use two connections: the feeder's claims must never land inside a record's
transaction.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import duckdb

from pacscopy import index as idx
from pacscopy.errors import BooksError
from pacscopy.pg.books import Link, Shard
from pacscopy.pg.connect import connect, guarded, run

if TYPE_CHECKING:
    import psycopg

    from pacscopy.dicom.peer import Target
    from pacscopy.send.options import SendOptions
    from pacscopy.send.worker import Item

log = logging.getLogger(__name__)

_PG_COLS = ("sop_instance_uid", "started", "finished", "bytes", "status", "outcome", "error", "wire_xxh3")


class PgBooks:
    """A send's books: the local ones (``local``) and the migration's shared ones at ``url``."""

    def __init__(self, local: Any, url: str, link: Link, shard: Shard | None = None) -> None:
        self.local = local
        self.url = url
        self.link = link
        self.shard = shard
        self.claim_con: psycopg.Connection[Any] = connect(url)
        self.record_con: psycopg.Connection[Any] = connect(url)
        self.run_id = 0
        self.target = ""
        self.skipped = 0  # instances of the queue another host claimed (sending or stored)
        self.error: BooksError | None = None

    # -- the Books protocol ------------------------------------------------------------

    def start_run(self, target: Target, opts: SendOptions, queued: int) -> int:
        self.run_id = self.local.start_run(target, opts, queued)
        self.target = str(target)
        with guarded(self.url, "starting the run"):
            # held by the claim connection while this send lives: its claims are not taken by others
            run(self.claim_con, "host_sending", {"host_id": self.link.host_id})
            run(self.record_con, "run_start", {"host_id": self.link.host_id, "run_id": self.run_id,
                                                "target": self.target, "shard": str(self.shard) if self.shard else None})
        return self.run_id

    def claim(self, batch: list[Item]) -> list[Item]:
        if self.error is not None:
            raise self.error  # PostgreSQL is gone: send nothing more
        try:
            with guarded(self.url, "claiming instances"):
                got = {r[0] for r in run(self.claim_con, "claim", {
                    "target": self.target, "host_id": self.link.host_id, "run_id": self.run_id,
                    "sops": [it.sop_instance_uid for it in batch]}).fetchall()}
        except BooksError as e:
            self.error = self.error or e
            raise
        mine = [it for it in batch if it.sop_instance_uid in got]
        self.skipped += len(batch) - len(mine)
        return mine

    def record(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.local.record(rows)  # first: durable whatever happens to PostgreSQL
        if self.error is not None:
            return  # caught up by the next send (catch_up)
        stored = [r["sop_instance_uid"] for r in rows if r["outcome"] in ("stored", "warning")]
        failed = [r["sop_instance_uid"] for r in rows if r["outcome"] == "failed"]
        try:
            with guarded(self.url, "recording transfers"), self.record_con.transaction():
                params: dict[str, Any] = {c: [r[c] for r in rows] for c in _PG_COLS}
                params.update(host_id=self.link.host_id, run_id=self.run_id, target=self.target)
                run(self.record_con, "insert_transfers", params)
                keys = {"target": self.target, "host_id": self.link.host_id}
                if stored:
                    run(self.record_con, "claims_stored", {**keys, "sops": stored})
                if failed:  # another host may try its copy
                    run(self.record_con, "claims_release", {**keys, "sops": failed})
                run(self.record_con, "host_seen", {"host_id": self.link.host_id})
        except BooksError as e:
            log.info("%s", e)  # said once, by the send's end (finish)
            self.error = e

    def record_source_changed(self, rows: list[dict[str, Any]]) -> None:
        self.local.record_source_changed(rows)

    def tick(self) -> None:
        self.local.tick()

    def finish(self, summary: Any) -> None:
        if self.skipped:
            # claimed by other hosts: theirs to send, not left by this run
            summary.queued -= self.skipped
            for key in [k for k in summary.not_sent if k.startswith("not attempted")]:
                summary.not_sent[key] -= self.skipped
                if summary.not_sent[key] <= 0:
                    del summary.not_sent[key]
            if summary.outcome == "incomplete" and summary.left <= 0:
                summary.outcome = "complete"
        self.local.finish(summary)
        if self.error is None:
            try:
                with guarded(self.url, "closing the run"), self.record_con.transaction():
                    run(self.record_con, "run_finish", {"host_id": self.link.host_id, "run_id": self.run_id,
                                                         "outcome": summary.outcome})
                    run(self.record_con, "claims_release_run", {"target": self.target, "host_id": self.link.host_id,
                                                                 "run_id": self.run_id})
            except BooksError as e:
                self.error = e
        if self.error is not None:
            raise BooksError(f"{self.error}; this host's books keep every answer: send again once PostgreSQL is back")

    def close(self) -> None:
        try:
            self.local.close()
        finally:
            for con in (self.claim_con, self.record_con):
                try:
                    con.close()
                except Exception:  # closing a connection to a server that is gone
                    pass


def catch_up(url: str, link: Link, index_con: duckdb.DuckDBPyConnection, target: str) -> int:
    """Record in the books what this host's local books hold and the shared ones miss: its claims left
    'sending' (a run killed, PostgreSQL gone) whose instances the local books show stored. Returns how many."""
    with connect(url) as con, guarded(url, "catching up"), con.transaction():
        # one catch-up per host and target at a time (the send's own lock is taken later)
        run(con, "lock_host_target", {"target": target, "host_id": link.host_id})
        pending = [r[0] for r in run(con, "claims_pending", {"target": target, "host_id": link.host_id}).fetchall()]
        if not pending:
            return 0
        cur = idx.run(index_con, "ops/books/stored_transfers", {"target": target, "sops": pending})
        n = 0
        while True:
            rows = cur.fetchmany(1000)
            if not rows:
                break
            cols = [d[0] for d in cur.description or ()]
            dicts = [dict(zip(cols, r)) for r in rows]
            for run_id in sorted({d["run_id"] for d in dicts}):
                part = [d for d in dicts if d["run_id"] == run_id]
                p = {c: [d[c] for d in part] for c in _PG_COLS}
                run(con, "insert_transfers", {**p, "host_id": link.host_id, "run_id": run_id, "target": target})
            run(con, "claims_stored", {"target": target, "host_id": link.host_id,
                                       "sops": [d["sop_instance_uid"] for d in dicts]})
            n += len(dicts)
        return n

