"""The books of a send: where the send loop records its run, its attempts and its end.

:func:`pacscopy.send.send.send` records only through a :class:`Books` object,
so that where the books live is not the send loop's business:

- :class:`LocalBooks` writes straight into an open index (one transaction per
  flush), as pacscopy did when a send held the index for the whole run;
- :class:`pacscopy.journal.JournalBooks` appends to the send's journal in the
  run folder and merges it into the index every second or so, holding the
  index only for that merge (the default: other commands run meanwhile);
- a PostgreSQL implementation shares the books of one migration between hosts
  (it claims instances before they are sent, and keeps the local books too).

Every method is called from the send's main thread, except :meth:`Books.claim`,
which the feeder thread calls for each batch before it is handed to a worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import duckdb

from pacscopy.index import insert_columns, run, transaction

if TYPE_CHECKING:
    from pacscopy.dicom.peer import Target
    from pacscopy.send.options import SendOptions
    from pacscopy.send.send import SendSummary
    from pacscopy.send.worker import Item

#: Columns of ``transfers`` a worker reports per attempt (run_id, target and status_hex are filled in by SQL).
TRANSFER_COLS = ("sop_instance_uid", "path", "started", "finished", "bytes", "status", "status_meaning", "outcome",
                 "error", "wire_xxh3", "transfer_syntax_uid", "rewritten", "association")


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


class LocalBooks:
    """The books written straight into an open index connection, one transaction per call."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.run_id = 0
        self.target = ""

    def start_run(self, target: Target, opts: SendOptions, queued: int) -> int:
        row = run(self.con, "ops/send/send_start", {
            "target": str(target), "associations": opts.associations, "max_rate": opts.max_rate,
            "window": str(opts.window) if opts.window else None, "selection": selection(opts), "queued": queued,
        }).fetchone()
        assert row is not None
        self.run_id, self.target = int(row[0]), str(target)
        return self.run_id

    def claim(self, batch: list[Item]) -> list[Item]:
        return batch

    def record(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        cols = {c: [r[c] for r in rows] for c in TRANSFER_COLS}
        with transaction(self.con):
            insert_columns(self.con, "ops/send/insert_transfers", cols, run_id=self.run_id, target=self.target)

    def record_source_changed(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            insert_columns(self.con, "ops/send/insert_source_changed", {
                "path": [c["path"] for c in rows], "sop": [c["sop_instance_uid"] for c in rows],
                "detail": [c["detail"] for c in rows]})

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
