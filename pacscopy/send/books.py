"""The books of a send: where the send loop records its run, its attempts and its end.

:func:`pacscopy.send.send.send` records only through a :class:`Books` object,
so that where the books live is not the send loop's business:

- :class:`LocalBooks` writes straight into an open index (one transaction per
  flush), as pacscopy did when a send held the index for the whole run;
- :class:`JournalBooks` appends to the send's journal in the
  run folder and merges it into the index every second or so, holding the
  index only for that merge (the default: other commands run meanwhile);
- a PostgreSQL implementation shares the books of one migration between hosts
  (it claims instances before they are sent, and keeps the local books too).

Every method is called from the send's main thread, except :meth:`Books.claim`,
which the feeder thread calls for each batch before it is handed to a worker.
:class:`JournalBooks` merges from a thread of its own, so that a merge (an open
of the index, an insert, a checkpoint on close: seconds on a busy machine)
never stalls the main loop that takes the workers' results.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import duckdb

from pacscopy.errors import IndexBusyError
from pacscopy.index import insert_columns, lock_wait, run, transaction
from pacscopy.journal import MERGE_EVERY, Journal, Merger, record_transfers, remove, writer_record
from pacscopy.runfolder import run_dir, write_private
from pacscopy.send.status_counts import keeping

if TYPE_CHECKING:
    from pacscopy.dicom.peer import Target
    from pacscopy.send.options import SendOptions
    from pacscopy.send.send import SendSummary
    from pacscopy.send.worker import Item

#: Columns of ``transfers`` a worker reports per attempt (run_id, target and status_hex are filled in by SQL).
TRANSFER_COLS = ("sop_instance_uid", "path", "started", "finished", "bytes", "status", "status_meaning", "outcome",
                 "error", "wire_xxh3", "transfer_syntax_uid", "rewritten", "association")


log = logging.getLogger(__name__)

#: What a journaled attempt carries beyond :data:`TRANSFER_COLS`: what was read and sent (from the spool).
SENT_COLS = ("source_xxh3", "sent_patient_id", "sent_header", "is_update")


def selection(opts: SendOptions) -> str | None:
    """The run's selection as recorded in ``send_runs.selection``."""
    return " ".join(x for x in (f"where {opts.where}" if opts.where else "",
                                f"limit {opts.limit}" if opts.limit is not None else "",
                                "no-updates" if not opts.updates else "",
                                "updates-only" if opts.updates_only else "") if x) or None


class Books(Protocol):
    """Where a send records; see the module's docstring."""

    def start_run(self, target: Target, opts: SendOptions, queued: int) -> int:
        """Open the run's record; return its run id."""
        ...

    def claim(self, batch: list[Item]) -> list[Item]:
        """The part of ``batch`` this sender may send (all of it on one machine; shared books claim it)."""
        ...

    def record(self, rows: list[dict[str, Any]]) -> None:
        """Record C-STORE attempts (the workers' ``transfer`` messages; see :data:`TRANSFER_COLS`).

        Each row may also carry ``source_xxh3``, ``sent_patient_id`` and ``sent_header``: what was
        read and sent, as the queue had it. Called at least once a second while attempts come in;
        when it returns, the rows are durable (kill -9 loses none of them).
        """
        ...

    def record_source_changed(self, rows: list[dict[str, Any]]) -> None:
        """Record files that changed since the scan (finding ``source_changed``): path, sop_instance_uid, detail."""
        ...

    def tick(self) -> None:
        """Called about every half second by the send loop: a chance for periodic work (merging a journal)."""
        ...

    def finish(self, summary: SendSummary) -> None:
        """Close the run's record with its counts and outcome."""
        ...

    def close(self) -> None:
        """Release whatever the books hold (called once, also after a failure)."""
        ...


class _OneHost:
    """What the books of one host share: every instance is its own to send, an empty batch is not recorded."""

    run_id = 0
    target = ""

    def claim(self, batch: list[Item]) -> list[Item]:
        return batch

    def record(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._record(rows)

    def record_source_changed(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._record_source_changed({"path": [c["path"] for c in rows],
                                         "sop": [c["sop_instance_uid"] for c in rows],
                                         "detail": [c["detail"] for c in rows]})

    def _record(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _record_source_changed(self, cols: dict[str, list[Any]]) -> None:
        raise NotImplementedError


class LocalBooks(_OneHost):
    """The books written straight into an open index connection, one transaction per call."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def start_run(self, target: Target, opts: SendOptions, queued: int) -> int:
        row = run(self.con, "ops/send/send_start", {
            "target": str(target), "associations": opts.associations, "max_rate": opts.max_rate,
            "window": str(opts.window) if opts.window else None, "selection": selection(opts), "queued": queued,
        }).fetchone()
        assert row is not None
        self.run_id, self.target = int(row[0]), str(target)
        return self.run_id

    def _record(self, rows: list[dict[str, Any]]) -> None:
        cols = {c: [r[c] for r in rows] for c in TRANSFER_COLS}
        with transaction(self.con), keeping(self.con, self.target, cols["sop_instance_uid"]):
            record_transfers(self.con, "ops/send/insert_transfers", cols, self.run_id, self.target)

    def _record_source_changed(self, cols: dict[str, list[Any]]) -> None:
        insert_columns(self.con, "ops/send/insert_source_changed", cols)

    def tick(self) -> None:
        pass

    def finish(self, summary: SendSummary) -> None:
        run(self.con, "ops/send/send_finish", finish_params(summary))

    def close(self) -> None:
        pass


def finish_params(s: SendSummary) -> dict[str, Any]:
    """The parameters of ``ops/send/send_finish`` for a run's summary."""
    return {"run_id": s.run_id, "stored": s.stored, "warnings": s.warnings, "failed": s.failed,
            "not_sent": s.left, "bytes": s.bytes_sent, "outcome": s.outcome}


#: Seconds between a send's writes of its rate file (``status`` shows it), and the window of that rate.
RATE_EVERY = 2.0
RATE_WINDOW = 60.0


class JournalBooks(_OneHost):
    """The books in the send's journal (:mod:`pacscopy.journal`), merged into the index every second or so.

    The run's start is written into the index directly (``con`` is set while
    the index is open at the start); everything after goes to the journal. A
    merge thread (started with the first record, once the index is closed
    again) merges the journal when the index is free, never waiting for it, so
    the main loop never waits for a merge. :meth:`finish` stops the thread and
    merges what is left, waiting up to the lock wait; if the index stays busy,
    the journal stays and the next read-write open merges it.
    """

    def __init__(self, index_path: str, merge_every: float = MERGE_EVERY) -> None:
        self.index_path = index_path
        self.merge_every = merge_every
        self.con: duckdb.DuckDBPyConnection | None = None
        self.journal: Journal | None = None
        self.merger: Merger | None = None  # merges the journal from a thread of its own
        self.run_id = 0
        self.target = ""
        self.merged = True
        self.done = (0, 0)  # instances stored (or with a warning) and their bytes, so far
        self.samples: deque[tuple[float, int, int]] = deque()  # (time, instances, bytes): the last minute
        self.last_sample = 0.0

    @property
    def dirty(self) -> bool:
        """Whether the journal holds lines not merged by this run yet."""
        return self.merger is not None and self.merger.dirty

    @property
    def journal_name(self) -> str:
        return f"{self.run_id}-{os.getpid()}"

    @property
    def spool(self) -> Path:
        """The parquet file the run's queue is copied to."""
        return run_dir(self.index_path) / f"spool-{self.journal_name}.parquet"

    def start_run(self, target: Target, opts: SendOptions, queued: int) -> int:
        assert self.con is not None, "start_run needs the index open (JournalBooks.con)"
        self.run_id = LocalBooks(self.con).start_run(target, opts, queued)
        self.target = str(target)
        self.journal = Journal.create(self.index_path, self.journal_name)
        self.journal.append("start", **writer_record(self.run_id, self.target))
        self.merger = Merger(self.index_path, self.journal, self.merge_every, publish=self.target)
        self.samples.append((time.time(), 0, 0))
        return self.run_id

    def _record(self, rows: list[dict[str, Any]]) -> None:
        assert self.journal is not None and self.merger is not None
        cols = {c: [r.get(c) for r in rows] for c in (*TRANSFER_COLS, *SENT_COLS)}
        self.journal.append("transfers", run_id=self.run_id, target=self.target, cols=cols)
        self.merger.noted()  # the first starts the merge thread: the index is closed by now
        ok = [r for r in rows if r["outcome"] in ("stored", "warning")]
        self.done = (self.done[0] + len(ok), self.done[1] + sum(r["bytes"] or 0 for r in ok))

    def _record_source_changed(self, cols: dict[str, list[Any]]) -> None:
        assert self.journal is not None and self.merger is not None
        self.journal.append("source_changed", cols=cols)
        self.merger.noted()

    def tick(self) -> None:
        """Raise what stopped the merge thread, if anything did (the merges themselves run in that thread);
        every few seconds, write the send's rate over the last minute for ``status`` (:meth:`write_rate`)."""
        if self.merger is not None and self.merger.error is not None:
            e, self.merger.error = self.merger.error, None
            raise e
        if self.journal is not None and time.time() - self.last_sample >= RATE_EVERY:
            self.write_rate()

    @property
    def rate_file(self) -> Path:
        return run_dir(self.index_path) / f"rate-{self.journal_name}.json"

    def write_rate(self) -> None:
        """``<index>.run/rate-RUN-PID.json``: instances and MB per second over the last minute (or since
        the start, if shorter), as of now. ``status`` reads it (:func:`pacscopy.journal.running`)."""
        now = self.last_sample = time.time()
        self.samples.append((now, *self.done))
        while len(self.samples) > 2 and self.samples[1][0] <= now - RATE_WINDOW:
            self.samples.popleft()  # keep one sample at or before the window's start
        t0, n0, b0 = self.samples[0]
        span = now - t0
        if span <= 0:
            return
        rec = {"run_id": self.run_id, "target": self.target, "pid": os.getpid(),
               "at": dt.datetime.fromtimestamp(now).isoformat(timespec="seconds"), "seconds": round(span, 1),
               "instances_per_s": (self.done[0] - n0) / span, "bytes_per_s": (self.done[1] - b0) / span,
               "stored": self.done[0], "bytes": self.done[1]}
        try:
            write_private(self.rate_file, json.dumps(rec))
        except OSError as e:  # a courtesy for status: never stops a send
            log.debug("cannot write %s: %s", self.rate_file, e)

    def finish(self, summary: SendSummary) -> None:
        assert self.journal is not None and self.merger is not None
        self.merger.stop()
        self.journal.append("finish", params=finish_params(summary))
        self.merger.appended += 1
        try:
            self.merged = self.merger.try_merge(wait=lock_wait())
        except IndexBusyError:
            self.merged = False
        if not self.merged:
            log.warning("the index stayed busy: run %d's last records stay in %s; the next pacscopy command "
                        "that opens the index merges them", self.run_id, self.journal.path)

    def close(self) -> None:
        if self.merger is not None:
            self.merger.stop()
        if self.journal is not None:
            self.rate_file.unlink(missing_ok=True)
        if self.journal is None:
            return
        if self.merged and not self.dirty:
            remove(self.journal.path)  # merged to the end, and still ours (locked): nobody else reads it
        self.journal.close()
