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
from typing import Any, NamedTuple

import duckdb

from pacscopy.dicom.peer import Target
from pacscopy.errors import InputError, PacscopyError
from pacscopy.index import fetch, insert_columns, load_sql, row_reader, run, transaction
from pacscopy.processes import forkserver
from pacscopy.send.worker import Item, WorkerOptions, worker

log = logging.getLogger(__name__)

BATCH = 32  # instances per task; at most 2 contexts each, well under 128 per association


@dataclass
class Window:
    """A daily time window ``HH:MM-HH:MM`` (may wrap past midnight)."""

    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, text: str) -> Window:
        try:
            a, b = text.split("-")
            start = dt.time.fromisoformat(a.strip())
            end = dt.time.fromisoformat(b.strip())
        except ValueError:
            raise InputError(f"--window {text!r} is not HH:MM-HH:MM (for example 19:00-06:30)") from None
        if start == end:
            raise InputError(f"--window {text!r} is empty: start and end are equal")
        return cls(start, end)

    def contains(self, now: dt.datetime) -> bool:
        t = now.time()
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def next_open(self, now: dt.datetime) -> dt.datetime:
        """When the window next opens (``now`` if it is open)."""
        if self.contains(now):
            return now
        candidate = dt.datetime.combine(now.date(), self.start)
        if candidate <= now:
            candidate += dt.timedelta(days=1)
        return candidate

    def __str__(self) -> str:
        return f"{self.start.strftime('%H:%M')}-{self.end.strftime('%H:%M')}"


def wait_for_window(window: Window | None, *, clock: Callable[[], dt.datetime] = dt.datetime.now,
                    sleep: Callable[[float], None] = time.sleep,
                    on_wait: Callable[[dt.datetime], None] | None = None,
                    stop: Any = None) -> float:
    """Block until ``window`` is open; return the seconds waited (by ``clock``)."""
    if window is None:
        return 0.0
    first = clock()
    now = first
    told = False
    while not window.contains(now):
        opens = window.next_open(now)
        if on_wait and not told:
            on_wait(opens)
            told = True
        if stop is not None and stop.is_set():
            break
        sleep(min(60.0, max(0.5, (opens - now).total_seconds())))
        now = clock()
    return (now - first).total_seconds()


def parse_rate(text: str | None) -> int | None:
    """``40MB/s``, ``500KB/s``, ``1.5MiB/s``, ``1000000`` -> bytes per second."""
    if text is None:
        return None
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)(i?)[bB]?(?:/s)?\s*", text)
    if not m:
        raise InputError(f"--max-rate {text!r} is not a rate like 40MB/s or 500KB/s")
    value = float(m.group(1))
    base = 1024 if m.group(3) else 1000
    value *= {"": 1, "k": base, "m": base**2, "g": base**3}[m.group(2).lower()]
    if value < 1:
        raise InputError(f"--max-rate {text!r} must be at least 1 byte/s")
    return int(value)


@dataclass
class SendOptions:
    associations: int = 2
    calling_ae: str = "PACSCOPY"
    max_rate: int | None = None
    window: Window | None = None
    where: str | None = None
    limit: int | None = None
    timeout: float = 20.0
    retries: int = 4
    backoff: float = 1.0
    wait_for_target: float = 120.0
    transcode: bool = False


@dataclass
class SendSummary:
    run_id: int
    target: str
    queued: int = 0
    bytes_queued: int = 0
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

    @property
    def left(self) -> int:
        return self.queued - self.stored - self.warnings


# -- the queue -------------------------------------------------------------------

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


# -- the run ---------------------------------------------------------------------

#: Outcomes set by a worker's verdict on the target, which the other workers' "stopped" must not hide.
_STOPPED = ("target_down", "target_refused")

#: Columns of ``transfers`` a worker reports per attempt (run_id, target and status_hex are filled in by SQL).
_TRANSFER_COLS = ("sop_instance_uid", "path", "started", "finished", "bytes", "status", "status_meaning", "outcome",
                  "error", "wire_xxh3", "transfer_syntax_uid", "rewritten", "association")


def send(
    con: duckdb.DuckDBPyConnection,
    target: Target,
    opts: SendOptions,
    *,
    on_total: Callable[[int, int], None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    on_wait: Callable[[dt.datetime], None] | None = None,
) -> SendSummary:
    """Send the queue for ``target``; return the run's summary."""
    ctx = forkserver("pacscopy.send.worker")
    queued, qbytes = queue_size(con, target, opts)
    started_row = run(con, "ops/send/send_start", {
        "target": str(target), "associations": opts.associations, "max_rate": opts.max_rate,
        "window": str(opts.window) if opts.window else None,
        "selection": " ".join(x for x in (f"where {opts.where}" if opts.where else "",
                                          f"limit {opts.limit}" if opts.limit is not None else "") if x) or None,
        "queued": queued,
    }).fetchone()
    assert started_row is not None
    run_id = int(started_row[0])
    summary = SendSummary(run_id, str(target), queued, qbytes)
    if on_total:
        on_total(queued, qbytes)
    if not queued:
        _finish(con, summary)
        return summary
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

    def feed() -> None:
        try:
            feed_con = con.cursor()
            batch: list[Item] = []
            for item in iter_queue(feed_con, target, opts):
                if stop.is_set():
                    break
                batch.append(item)
                if len(batch) >= BATCH:
                    wait_for_window(opts.window, on_wait=on_wait, stop=stop)
                    tasks.put(batch)
                    fed[0] += len(batch)
                    batch = []
            if batch and not stop.is_set():
                wait_for_window(opts.window, on_wait=on_wait, stop=stop)
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
                _write_transfers(con, summary, target, pending)
                pending = []
                last_flush = time.monotonic()
    except KeyboardInterrupt:
        stop.set()
        summary.outcome = "interrupted"
        raise
    finally:
        stop.set()  # first: should recording fail (a full index disk), no worker goes on sending
        _write_transfers(con, summary, target, pending)
        if changed:
            insert_columns(con, "ops/send/insert_source_changed", {
                "path": [c["path"] for c in changed], "sop": [c["sop_instance_uid"] for c in changed],
                "detail": [c["detail"] for c in changed]})
        stop.set()
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.kill()
        feeder.join(timeout=5)
        summary.seconds = time.monotonic() - started
        _finish(con, summary)
    if feeder_error:
        e = feeder_error[0]
        raise e if isinstance(e, PacscopyError) else PacscopyError(f"reading the send queue failed: {e}")
    return summary


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


def _write_transfers(con: duckdb.DuckDBPyConnection, s: SendSummary, target: Target,
                     rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = {c: [r[c] for r in rows] for c in _TRANSFER_COLS}
    with transaction(con):
        insert_columns(con, "ops/send/insert_transfers", cols, run_id=s.run_id, target=str(target))


def _finish(con: duckdb.DuckDBPyConnection, s: SendSummary) -> None:
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
    run(con, "ops/send/send_finish", {"run_id": s.run_id, "stored": s.stored, "warnings": s.warnings,
                                 "failed": s.failed, "not_sent": left, "bytes": s.bytes_sent,
                                 "outcome": s.outcome})


def load_patient_map(con: duckdb.DuckDBPyConnection, path: str, *, merge: bool = False) -> int:
    """Load ``old_id,new_id[,issuer]`` rows into ``patient_map``, all or nothing; errors name the line.

    Every ID must be a valid PatientID (VR LO). Refused, because a wrong map silently
    relabels patients: an old ID given twice; chains, cycles and swaps (an ID mapped onto
    an ID that is itself mapped, in this file or an earlier load); and, unless ``merge``,
    a mapping that merges two patients (the new ID already belongs to another patient in
    the index, or two old IDs map onto one new ID). Merges loaded with ``merge`` are
    recorded in ``patient_map.is_merge``. Validation is set-wise, in SQL.
    """
    import csv
    import io

    from pacscopy import validate

    text = validate.read_text(path, "mapping file")
    lines: list[int] = []
    olds: list[str] = []
    news: list[str] = []
    issuers: list[str | None] = []
    seen: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            line = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if line == 1 and row[0].strip().lower() in ("old_id", "old_patient_id", "old"):
                continue
            if len(row) not in (2, 3):
                raise InputError(f"{path}, line {line}: expected old_id,new_id[,issuer], found {len(row)} fields")
            old, new = row[0].strip(), row[1].strip()
            issuer = (row[2].strip() or None) if len(row) == 3 else None
            try:
                validate.patient_id(old, "old PatientID")
                validate.patient_id(new, "new PatientID")
                if issuer is not None:
                    validate.patient_id(issuer, "issuer")
            except InputError as e:
                raise InputError(f"{path}, line {line}: {e}") from None
            if old in seen:
                raise InputError(f"{path}, line {line}: PatientID {old!r} is mapped twice "
                                 f"(lines {seen[old]} and {line})")
            seen[old] = line
            lines.append(line)
            olds.append(old)
            news.append(new)
            issuers.append(issuer)
    except csv.Error as e:
        raise InputError(f"{path}, line {reader.line_num}: {e}") from None
    if not olds:
        raise InputError(f"{path}: no mappings in the file")
    with transaction(con):
        run(con, "ops/send/map_stage", {"line": lines, "old": olds, "new": news, "issuer": issuers})
        merge_lines: list[int] = []
        for kind, line, other, old, new, other_old, other_new, files in run(con, "ops/send/map_problems").fetchall():
            where = f"line {other}" if other is not None else "an earlier map load"
            if kind == "chain":
                raise InputError(
                    f"{path}, line {line}: {old!r} -> {new!r} and {other_old!r} -> {other_new!r} ({where}) "
                    "chain, swap or cycle PatientIDs: map each old ID directly to its final ID")
            if merge:
                merge_lines.append(line)
                continue
            if kind == "merge_index":
                raise InputError(
                    f"{path}, line {line}: new PatientID {new!r} already belongs to another patient in the index "
                    f"({files} files): mapping {old!r} onto it merges two patients; if that is intended, "
                    "load the file with --merge")
            raise InputError(
                f"{path}, line {line}: {old!r} and {other_old!r} ({where}) are both mapped onto {new!r}: "
                "that merges two patients; if that is intended, load the file with --merge")
        run(con, "ops/send/insert_patient_map", {"source": str(path), "merge_lines": sorted(set(merge_lines))})
        con.execute("DROP TABLE map_stage")
    return len(olds)
