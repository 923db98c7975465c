"""Send what the plan says ``send`` to the target with C-STORE.

Bookkeeping first: every attempt becomes one ``transfers`` row, written by
this (the main) process only after the target answered or the attempt
failed; an instance counts as stored only on status 0x0000 or a storing
warning (0xB000, 0xB006, 0xB007). A run killed at any moment loses at most
the rows of attempts in flight, and those instances are simply sent again.

Speed second: N worker processes (:mod:`pacscopy.send.worker`) each hold one
association, stream datasets from disk without decoding them over a socket
they drive themselves (:class:`pacscopy.dicom.storelink.StoreLink`), and share one
byte-rate pacer. Processes rather than threads: the per-instance Python cost
is what limits a sender, and the GIL would serialise it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue as _queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

from pacscopy.dicom.peer import Target
from pacscopy.errors import PacscopyError
from pacscopy.processes import forkserver
from pacscopy.send.books import MERGE_EVERY, Books, JournalBooks, LocalBooks
from pacscopy.send.options import SendOptions, wait_for_window
from pacscopy.send.queue import Sent, iter_queue, iter_spool, queue_counts, write_spool
from pacscopy.send.worker import Item, WorkerOptions, worker

log = logging.getLogger(__name__)

BATCH = 32  # instances per task; at most 2 contexts each, well under 128 per association


@dataclass
class SendSummary:
    run_id: int
    target: str
    queued: int = 0
    bytes_queued: int = 0
    updates_queued: int = 0
    stored: int = 0
    warnings: int = 0
    failed: int = 0
    retries: int = 0
    source_changed: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    outcome: str = "complete"
    target_error: str | None = None
    failed_by_status: dict[str, int] = field(default_factory=dict)
    not_sent: dict[str, int] = field(default_factory=dict)
    merged: bool = True  # everything recorded is in the index (else in the journal: the next open merges it)

    @property
    def left(self) -> int:
        return self.queued - self.stored - self.warnings


# -- the run ---------------------------------------------------------------------

#: Outcomes set by a worker's verdict on the target, which the other workers' "stopped" must not hide.
_STOPPED = ("target_down", "target_refused")


Callbacks = tuple[Callable[[int, int], None] | None, Callable[[dict[str, Any]], None] | None,
                  Callable[[dt.datetime], None] | None]


def send(
    con: duckdb.DuckDBPyConnection,
    target: Target,
    opts: SendOptions,
    *,
    on_total: Callable[[int, int], None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    on_wait: Callable[[dt.datetime], None] | None = None,
    books: Books | None = None,
) -> SendSummary:
    """Send the queue for ``target`` holding the index ``con`` throughout; return the run's summary.

    Everything is recorded through ``books`` (:mod:`pacscopy.send.books`; default: straight into ``con``).
    The CLI uses :func:`send_index`, which holds the index only briefly.
    """
    queued, qbytes, updates = queue_counts(con, target, opts)
    books = books if books is not None else LocalBooks(con)
    run_id = books.start_run(target, opts, queued)
    summary = SendSummary(run_id, str(target), queued, qbytes, updates)
    if on_total:
        on_total(queued, qbytes)
    if not queued:
        _finish(books, summary)
        return summary
    return _run(lambda: ((item, None) for item in iter_queue(con.cursor(), target, opts)), target, opts, books,
                summary, on_progress, on_wait)


def send_index(
    index_path: str,
    target: Target,
    opts: SendOptions,
    *,
    on_total: Callable[[int, int], None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    on_wait: Callable[[dt.datetime], None] | None = None,
    wrap_books: Callable[[Books], Books] | None = None,
    merge_every: float = MERGE_EVERY,
) -> SendSummary:
    """Send the queue for ``target`` from the index at ``index_path``, holding the index only briefly.

    One send per target (:func:`pacscopy.runfolder.lock_target`). At the start it
    opens the index, records the run, copies the queue to a spool file in the
    run folder and closes the index; then it records into its journal and merges
    it into the index every ``merge_every`` seconds when the index is free
    (:class:`pacscopy.send.books.JournalBooks`). ``wrap_books`` may wrap those
    books (shared books on PostgreSQL keep the local ones too).
    """
    from pacscopy.index import open_index
    from pacscopy.runfolder import lock_target
    from pacscopy.send import status_cache

    lock = lock_target(index_path, str(target))
    try:
        local = JournalBooks(index_path, merge_every)
        books = wrap_books(local) if wrap_books is not None else local
        try:
            with open_index(index_path) as con:
                if opts.updates_only:
                    from pacscopy.verify.living import require_sent

                    require_sent(con, target)
                queued, qbytes, updates = queue_counts(con, target, opts)
                local.con = con
                run_id = books.start_run(target, opts, queued)
                # the lock names the run as soon as the run exists (a second send refused now says which)
                lock.update(run_id=run_id, journal=local.journal_name)
                if queued:
                    write_spool(con, target, opts, local.spool)
                # status's figures as of the start, for a status that asks (status_cache: it then needs no index)
                status_cache.publish_if_wanted(con, index_path, str(target), local.journal_name)
                local.con = None
            summary = SendSummary(run_id, str(target), queued, qbytes, updates)
            if on_total:
                on_total(queued, qbytes)
            if not queued:
                _finish(books, summary)
            else:
                _run(lambda: iter_spool(local.spool), target, opts, books, summary, on_progress, on_wait)
            summary.merged = local.merged
            return summary
        finally:
            books.close()
    finally:
        lock.release()


def _run(items: Callable[[], Iterator[tuple[Item, Sent | None]]], target: Target, opts: SendOptions, books: Books,
         summary: SendSummary, on_progress: Callable[[dict[str, Any]], None] | None,
         on_wait: Callable[[dt.datetime], None] | None) -> SendSummary:
    """The send loop: feed ``items`` to the workers, record what they report through ``books``."""
    ctx = forkserver("pacscopy.send.worker")
    queued = summary.queued
    started = time.monotonic()
    n = max(1, min(opts.associations, (queued + BATCH - 1) // BATCH))
    tasks = ctx.Queue(maxsize=n * 2)
    results = ctx.Queue()
    stop = ctx.Event()
    pacer_value = ctx.Value("d", 0.0)
    wopts = WorkerOptions(opts.calling_ae, opts.timeout, opts.retries, opts.backoff, opts.wait_for_target,
                          opts.max_rate)
    workers = [ctx.Process(target=worker, args=(i + 1, target, wopts, tasks, results, pacer_value, stop, os.getpid()),
                           daemon=True) for i in range(n)]
    for w in workers:
        w.start()
    feeder_error: list[BaseException] = []
    fed = [0]

    inflight: dict[str, tuple[Item, Sent]] = {}  # what the books record of an item sent, by path, until recorded

    def feed() -> None:
        try:
            batch: list[Item] = []
            for item, sent in items():
                if stop.is_set():
                    break
                if sent is not None:
                    inflight[item.path] = (item, sent)
                batch.append(item)
                if len(batch) >= BATCH:
                    wait_for_window(opts.window, on_wait=on_wait, stop=stop)
                    batch = books.claim(batch)
                    if batch:
                        tasks.put(batch)
                        fed[0] += len(batch)
                    batch = []
            if batch and not stop.is_set():
                wait_for_window(opts.window, on_wait=on_wait, stop=stop)
                batch = books.claim(batch)
                if batch:
                    tasks.put(batch)
                    fed[0] += len(batch)
        except BaseException as e:  # reported by the main thread
            feeder_error.append(e)
            stop.set()
        finally:
            for _ in workers:
                tasks.put(None)

    feeder = threading.Thread(target=feed, name="pacscopy-feeder", daemon=True)
    feeder.start()
    pending: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    last_flush = time.monotonic()
    done = 0
    try:
        while done < len(workers):
            books.tick()
            try:
                msgs = results.get(timeout=0.5)
            except _queue.Empty:
                if not any(w.is_alive() for w in workers):
                    break
                continue
            for msg in msgs:
                kind = msg.pop("kind")
                if kind == "done":
                    done += 1
                elif kind == "transfer":
                    known = inflight.get(msg["path"])
                    if known is not None:
                        _what_was_sent(msg, *known)
                        if msg["outcome"] != "retry":
                            inflight.pop(msg["path"], None)
                    pending.append(msg)
                    _count(summary, msg)
                    if on_progress:
                        on_progress(msg)
                elif kind == "source_changed":
                    changed.append(msg)
                    summary.source_changed += 1
                elif kind == "target_refused":
                    if summary.outcome != "target_refused":  # the first worker's reason is the one shown
                        summary.outcome = "target_refused"
                        summary.target_error = msg["error"]
                elif kind == "target_down":
                    if summary.outcome != "target_refused":
                        summary.outcome = "target_down"
                        summary.target_error = (f"--wait-for-target expired after {opts.wait_for_target:g} s: "
                                                f"{msg['error']}")
                elif kind == "unsent" and summary.outcome not in _STOPPED:
                    summary.outcome = "interrupted"  # workers stopped by another's verdict say so too: not that
            if pending and (len(pending) >= 500 or time.monotonic() - last_flush > 1.0):
                books.record(pending)
                pending = []
                last_flush = time.monotonic()
    except KeyboardInterrupt:
        stop.set()
        summary.outcome = "interrupted"
        raise
    finally:
        stop.set()  # first: should recording fail (a full index disk), no worker goes on sending
        books.record(pending)
        books.record_source_changed(changed)
        stop.set()
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.kill()
        feeder.join(timeout=5)
        summary.seconds = time.monotonic() - started
        _finish(books, summary)
    if feeder_error:
        e = feeder_error[0]
        raise e if isinstance(e, PacscopyError) else PacscopyError(f"reading the send queue failed: {e}")
    return summary


def _what_was_sent(msg: dict[str, Any], item: Item, sent: Sent) -> None:
    """Add to a transfer row what the books record of the copy sent, as the queue read it."""
    msg["source_xxh3"] = item.dataset_xxh3
    msg["sent_patient_id"] = sent.sent_patient_id  # what the queue wrote on the way out (map, manifest)
    msg["sent_header"] = sent.sent_header
    msg["is_update"] = sent.is_update


def _count(s: SendSummary, msg: dict[str, Any]) -> None:
    o = msg["outcome"]
    if o == "stored":
        s.stored += 1
        s.bytes_sent += msg["bytes"] or 0
    elif o == "warning":
        s.warnings += 1
        s.bytes_sent += msg["bytes"] or 0
    elif o == "failed":
        s.failed += 1
        key = (f"0x{msg['status']:04X} {msg['status_meaning']}" if msg["status"] is not None
               else (msg["error"] or "failed").split(":")[0])
        s.failed_by_status[key] = s.failed_by_status.get(key, 0) + 1
    elif o == "retry":
        s.retries += 1


def _finish(books: Books, s: SendSummary) -> None:
    left = s.left
    if s.outcome == "complete" and left:
        s.outcome = "incomplete"
    s.not_sent = {}
    if s.failed:
        s.not_sent["failed"] = s.failed
    if left - s.failed > 0:
        why = {"target_down": "target unreachable, --wait-for-target expired",
               "target_refused": "the target refuses pacscopy (see target: below)",
               "interrupted": "interrupted"}.get(s.outcome, "not attempted")
        s.not_sent[f"not attempted: {why}"] = left - s.failed
    books.finish(s)


