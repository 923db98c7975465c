"""The send queue: what the plan says to send to a target and is not stored there yet; a dry run; progress.

``--where`` is SQL by design (like ``pacscopy query``); it is wrapped as a
predicate over the queue's columns (``sql/ops/send/send_queue.sql``), never mixed with values.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import duckdb

from pacscopy.dicom.peer import Target
from pacscopy.errors import InputError, PacscopyError
from pacscopy.index import load_sql, row_reader, run
from pacscopy.send.options import SendOptions
from pacscopy.send.progress import SendProgress, progress_from  # re-exported: status's figures
from pacscopy.send.worker import Item

log = logging.getLogger(__name__)


def queue_sql(where: str | None, updates: bool = True, updates_only: bool = False) -> str:
    """The send queue, optionally filtered by the user's ``--where`` SQL predicate.

    ``--where`` is SQL by design (like ``pacscopy query``); it is wrapped as a
    predicate over the queue's columns, never mixed with values. Without
    ``updates``, instances the target already has are left out; with
    ``updates_only``, only they are sent (issue 14).
    """
    base = load_sql("ops/send/send_queue").strip().rstrip(";")
    if not updates:
        base = f"SELECT * FROM ({base}) u WHERE NOT is_update"
    elif updates_only:
        base = f"SELECT * FROM ({base}) u WHERE is_update"
    if where:
        base = f"SELECT * FROM ({base}) q WHERE ({where})"
    return base + "\nORDER BY sop_class_uid, send_syntax, path\nLIMIT $limit"


def iter_queue(con: duckdb.DuckDBPyConnection, target: Target, opts: SendOptions) -> Iterator[Item]:
    cur = con.cursor()
    try:
        cur.execute(queue_sql(opts.where, opts.updates, opts.updates_only),
                    {"target": str(target), "transcode": opts.transcode,
                     "limit": opts.limit if opts.limit is not None else 2**62})
    except duckdb.Error as e:
        raise _queue_error(opts, e) from None
    for item, _ in _items(cur):
        yield item
    cur.close()


def _items(cur: duckdb.DuckDBPyConnection) -> Iterator[tuple[Item, tuple[Any, ...]]]:
    """The queue's rows as :class:`Item` (read by name), each with its raw row, 1,000 at a time."""
    make = row_reader(cur, Item)
    while rows := cur.fetchmany(1000):
        for r in rows:
            item = make(r)
            if item.manifest_set:  # DuckDB's lists of [keyword, value] as pairs
                item = item._replace(manifest_set=tuple((k, v) for k, v in item.manifest_set))
            yield item, r


def write_spool(con: duckdb.DuckDBPyConnection, target: Target, opts: SendOptions, spool: Path) -> None:
    """Copy the queue for ``target`` to the parquet file ``spool`` (streamed by DuckDB: bounded memory).

    The send then reads its queue from there and need not hold the index.
    """
    sql = queue_sql(opts.where, opts.updates, opts.updates_only)
    con.execute("SET preserve_insertion_order = true")  # the queue's order groups contexts per batch
    try:
        con.execute(f"COPY ({sql}) TO $spool (FORMAT parquet)",
                    {"target": str(target), "transcode": opts.transcode, "spool": str(spool),
                     "limit": opts.limit if opts.limit is not None else 2**62})
    except duckdb.Error as e:
        raise _queue_error(opts, e) from None
    finally:
        con.execute("SET preserve_insertion_order = false")
    os.chmod(spool, 0o600)


#: What the books record of an instance sent, read with it from the spool (see ``Books.record``).
class Sent(NamedTuple):
    sent_patient_id: str | None  # after the manifest's correction and the map
    sent_header: str | None  # JSON
    is_update: bool


def iter_spool(spool: Path) -> Iterator[tuple[Item, Sent]]:
    """The queue written by :func:`write_spool`, in its order, read through an in-memory DuckDB."""
    mem = duckdb.connect()
    try:
        mem.execute("SET memory_limit = '256MB'")
        mem.execute("SET threads = 1")
        cur = mem.execute("SELECT * FROM read_parquet($spool)", {"spool": str(spool)})
        sent = row_reader(cur, Sent)
        for item, r in _items(cur):
            yield item, sent(r)
    finally:
        mem.close()


def _queue_error(opts: SendOptions, e: Exception) -> PacscopyError:
    first = str(e).splitlines()[0]
    if opts.where:
        return InputError(f"--where {opts.where!r}: {first}")
    return PacscopyError(f"cannot read the send queue: {first} (run 'pacscopy check' to rebuild the plan)")


def queue_size(con: duckdb.DuckDBPyConnection, target: Target, opts: SendOptions) -> tuple[int, int]:
    n, b, _ = queue_counts(con, target, opts)
    return n, b


def queue_counts(con: duckdb.DuckDBPyConnection, target: Target, opts: SendOptions) -> tuple[int, int, int]:
    """Instances, bytes and updates in the queue for ``target``."""
    sql = (f"SELECT count(*), coalesce(sum(size), 0), count(*) FILTER (WHERE is_update) "
           f"FROM ({queue_sql(opts.where, opts.updates, opts.updates_only)})")
    try:
        r = con.execute(sql, {"target": str(target), "transcode": opts.transcode,
                              "limit": opts.limit if opts.limit is not None else 2**62}).fetchone()
    except duckdb.Error as e:
        raise _queue_error(opts, e) from None
    assert r is not None
    return int(r[0]), int(r[1]), int(r[2])


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
    updates: int = 0  # instances the target already has, sent again because the source changed
    update_examples: list[tuple[str, str]] = field(default_factory=list)  # (SOPInstanceUID, why), the first 20


def dry_run(con: duckdb.DuckDBPyConnection, target: Target, opts: SendOptions) -> DryRun:
    """What :func:`send` would send with ``opts``, by SOP class and transfer syntax; sends nothing."""
    n, b, u = queue_counts(con, target, opts)
    queue = queue_sql(opts.where, opts.updates, opts.updates_only)
    params = {"target": str(target), "transcode": opts.transcode,
              "limit": opts.limit if opts.limit is not None else 2**62}
    sql = ("SELECT sop_class_uid, send_syntax AS transfer_syntax, count(*) AS instances, sum(size) AS bytes "
           f"FROM ({queue}) GROUP BY ALL ORDER BY 3 DESC")
    try:
        groups = [QueuedGroup(*r) for r in con.execute(sql, params).fetchall()]
        examples = con.execute(f"SELECT sop_instance_uid, update_why FROM ({queue}) WHERE is_update "
                               "ORDER BY 1 LIMIT 20", params).fetchall() if u else []
    except duckdb.Error as e:
        raise _queue_error(opts, e) from None
    return DryRun(str(target), n, b, groups, u, [(r[0], r[1]) for r in examples])


def last_run(con: duckdb.DuckDBPyConnection, target: str) -> tuple[Any, ...] | None:
    """The latest send run to ``target``: (run_id, started, ended, instances stored, bytes), or None.

    Ended is the run's end, or while it runs (or after it was killed) its latest attempt's. The totals are
    kept as the run's attempts are recorded (schema 0034), so this reads one row however long the run."""
    r = run(con, "ops/status/last_run", {"target": target}).fetchone()
    return tuple(r) if r is not None else None


def progress(con: duckdb.DuckDBPyConnection, target: Target, index_path: str | None = None, *,
             count: bool = True, on_total: Callable[[int], None] | None = None,
             on_progress: Callable[[int], None] | None = None) -> SendProgress | None:
    """Every planned instance by its state for ``target``, and the rate of its latest run.

    The figures kept in the index (:mod:`pacscopy.send.status_counts`) when they hold for it;
    else counted (minutes at tens of millions of instances). With ``index_path`` (the file ``con``
    has open) a count is kept for the next status: in the index if ``con`` may write (or the
    index can be had read-write at once), else beside it, valid only while the index is byte for
    byte unchanged (:mod:`pacscopy.send.status_cache`). Unless ``count``, None instead of a count
    (the caller counts on a connection that can keep it: :func:`open_to_count`). A count's slices
    are told to ``on_total`` and ``on_progress`` (:func:`pacscopy.send.status_counts.in_slices`).
    """
    from pacscopy.send import status_counts

    last = last_run(con, str(target))
    k = status_counts.kept(con, str(target))
    if k is not None:
        return progress_from(k[0], last, as_of=k[1])
    if index_path is None:
        return progress_from(status_counts.count(con, str(target), on_total=on_total, on_progress=on_progress), last)
    from pacscopy.send import status_cache

    sql = status_counts.load_count_sql()
    stamp = status_cache.index_stamp(index_path)
    cached = status_cache.load(index_path, str(target), sql, stamp)
    if cached is not None:
        try:
            counts = {s: status_counts.StateCount(*c) for s, c in cached.items()}
            return progress_from(counts, last)
        except (TypeError, ValueError):
            pass  # not this version's fields: count again
    if not count:
        return None
    if not _read_only(con):  # count once, keeping every instance's state for the writers to move
        return progress_from(status_counts.recount(con, str(target), on_total=on_total,
                                                           on_progress=on_progress), last, as_of=dt.datetime.now())
    fp = status_counts.fingerprint(con)
    counts = status_counts.count(con, str(target), on_total=on_total, on_progress=on_progress)
    if status_cache.index_stamp(index_path) == stamp:
        status_cache.save(index_path, str(target), sql, stamp, {s: list(c) for s, c in counts.items()})
    p = progress_from(counts, last, as_of=dt.datetime.now())
    p.counted = (index_path, str(target), counts, fp)  # kept by keep_count once con is closed
    return p


def open_to_count(index_path: str, lean: bool) -> duckdb.DuckDBPyConnection | None:
    """The index read-write for a full count or to keep one, if it can be had at once (else None).

    A count on a read-write connection keeps what it evaluated (:func:`progress`: one evaluation); a
    read-only count is kept afterwards by :func:`keep_count`, which evaluates again (at 50 M files
    ~15 minutes each). Holding the index read-write meanwhile blocks no writer more than a
    read-only open does: DuckDB lets no process write a file another one has open."""
    from pacscopy.errors import PacscopyError
    from pacscopy.index import open_index

    if not os.access(index_path, os.W_OK):
        return None
    try:
        return open_index(index_path, wait=0.0, lean=lean)
    except (PacscopyError, duckdb.Error) as e:
        log.debug("not to be had read-write now: %s", e)
        return None


def keep_count(p: SendProgress, *, on_total: Callable[[int], None] | None = None,
               on_progress: Callable[[int], None] | None = None) -> str | None:
    """Keep the full count :func:`progress` made on a read-only connection in the index, so that the
    writers keep it current from now on (best effort: the index busy or not writable, nothing kept).
    Keeping evaluates every instance again; its slices are told to ``on_total`` and ``on_progress``.

    Returns why it could not keep it when the index could be had but keeping failed (one line, for
    the command to show: the next status counts again); else None."""
    if p.counted is None:
        return None
    from pacscopy.index import failure_message
    from pacscopy.send import status_counts

    index_path, target, counts, fp = p.counted
    con = open_to_count(index_path, lean=True)
    if con is None:
        return None
    try:
        status_counts.store(con, target, counts, fp, on_total=on_total, on_progress=on_progress)
    except duckdb.Error as e:
        return f"the count was not kept in the index, so the next status counts again: {failure_message(e)}"
    finally:
        con.close()
    return None


def _read_only(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT current_setting('access_mode')").fetchone()
    return bool(row and str(row[0]).lower() == "read_only")
