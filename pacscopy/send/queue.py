"""The send queue: what the plan says to send to a target and is not stored there yet; a dry run; progress.

``--where`` is SQL by design (like ``pacscopy query``); it is wrapped as a
predicate over the queue's columns (``sql/ops/send/send_queue.sql``), never mixed with values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import duckdb

from pacscopy.dicom.peer import Target
from pacscopy.errors import InputError, PacscopyError
from pacscopy.index import fetch, load_sql, row_reader
from pacscopy.send.options import SendOptions
from pacscopy.send.worker import Item


def queue_sql(where: str | None) -> str:
    """The send queue, optionally filtered by the user's ``--where`` SQL predicate.

    ``--where`` is SQL by design (like ``pacscopy query``); it is wrapped as a
    predicate over the queue's columns, never mixed with values.
    """
    base = load_sql("ops/send/send_queue").strip().rstrip(";")
    if where:
        base = f"SELECT * FROM ({base}) q WHERE ({where})"
    return base + "\nORDER BY sop_class_uid, send_syntax, path\nLIMIT $limit"


def iter_queue(con: duckdb.DuckDBPyConnection, target: Target, opts: SendOptions) -> Iterator[Item]:
    cur = con.cursor()
    try:
        cur.execute(queue_sql(opts.where), {"target": str(target), "transcode": opts.transcode,
                                            "limit": opts.limit if opts.limit is not None else 2**62})
    except duckdb.Error as e:
        raise _queue_error(opts, e) from None
    make = row_reader(cur, Item)
    while True:
        rows = cur.fetchmany(1000)
        if not rows:
            break
        for r in rows:
            item = make(r)
            if item.manifest_set:  # DuckDB's lists of [keyword, value] as pairs
                item = item._replace(manifest_set=tuple((k, v) for k, v in item.manifest_set))
            yield item
    cur.close()


def _queue_error(opts: SendOptions, e: Exception) -> PacscopyError:
    first = str(e).splitlines()[0]
    if opts.where:
        return InputError(f"--where {opts.where!r}: {first}")
    return PacscopyError(f"cannot read the send queue: {first} (run 'pacscopy check' to rebuild the plan)")


def queue_size(con: duckdb.DuckDBPyConnection, target: Target, opts: SendOptions) -> tuple[int, int]:
    sql = f"SELECT count(*), coalesce(sum(size), 0) FROM ({queue_sql(opts.where)})"
    try:
        r = con.execute(sql, {"target": str(target), "transcode": opts.transcode,
                              "limit": opts.limit if opts.limit is not None else 2**62}).fetchone()
    except duckdb.Error as e:
        raise _queue_error(opts, e) from None
    assert r is not None
    return int(r[0]), int(r[1])


class QueuedGroup(NamedTuple):
    """Queued instances of one SOP class and transfer syntax (what a dry run shows)."""

    sop_class_uid: str
    transfer_syntax: str
    instances: int
    bytes: int


@dataclass
class DryRun:
    target: str
    instances: int
    bytes: int
    groups: list[QueuedGroup]


def dry_run(con: duckdb.DuckDBPyConnection, target: Target, opts: SendOptions) -> DryRun:
    """What :func:`send` would send with ``opts``, by SOP class and transfer syntax; sends nothing."""
    n, b = queue_size(con, target, opts)
    sql = ("SELECT sop_class_uid, send_syntax AS transfer_syntax, count(*) AS instances, sum(size) AS bytes "
           f"FROM ({queue_sql(opts.where)}) GROUP BY ALL ORDER BY 3 DESC")
    try:
        cur = con.execute(sql, {"target": str(target), "transcode": opts.transcode,
                                "limit": opts.limit if opts.limit is not None else 2**62})
    except duckdb.Error as e:
        raise _queue_error(opts, e) from None
    return DryRun(str(target), n, b, [QueuedGroup(*r) for r in cur.fetchall()])


@dataclass
class SendProgress:
    """Progress towards a target (``sql/ops/send/send_status.sql``) and the latest run's rate."""

    planned: int
    planned_bytes: int
    stored: int
    warnings: int
    failed: int
    left_to_send: int
    run_id: int | None
    started: dt.datetime | None
    ended: dt.datetime | None
    instances: int | None
    bytes: int | None

    @property
    def seconds(self) -> float:
        """The latest run's duration (0 if there is none or it sent nothing)."""
        if self.started is None or self.ended is None:
            return 0.0
        return max((self.ended - self.started).total_seconds(), 1e-3)

    @property
    def per_second(self) -> float:
        """Instances per second in the latest run (0 if unknown)."""
        return (self.instances or 0) / self.seconds if self.seconds and self.instances else 0.0

    @property
    def mb_per_second(self) -> float:
        return (self.bytes or 0) / 1e6 / self.seconds if self.seconds and self.instances else 0.0

    def finish(self, now: dt.datetime | None = None) -> dt.datetime | None:
        """When the rest would be sent at the latest run's rate, sending around the clock."""
        if not self.left_to_send or not self.per_second:
            return None
        return (now or dt.datetime.now()) + dt.timedelta(seconds=self.left_to_send / self.per_second)


def progress(con: duckdb.DuckDBPyConnection, target: Target) -> SendProgress:
    """Planned, stored, failed and left for ``target``, and the rate of its latest run."""
    return fetch(con, "ops/send/send_status", SendProgress, {"target": str(target)})[0]
