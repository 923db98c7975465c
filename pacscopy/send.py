"""Send what the plan says ``send`` to the target with C-STORE.

Bookkeeping first: every attempt becomes one ``transfers`` row, written by
this (the main) process only after the target answered or the attempt
failed; an instance counts as stored only on status 0x0000 or a storing
warning (0xB000, 0xB006, 0xB007). A run killed at any moment loses at most
the rows of attempts in flight, and those instances are simply sent again.

Speed second: N worker processes each hold one association (pynetdicom's
per-PDU Python cost makes processes, not threads, the lever), stream
datasets from disk without decoding them, and share one byte-rate pacer.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import logging
import multiprocessing as mp
import os
import queue as _queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import duckdb

from pacscopy.dicomnet import (
    STORED,
    STORED_WARNINGS,
    BytesSource,
    FileSource,
    Source,
    SourceChanged,
    Target,
    encode_dataset,
    make_ae,
    nodelay_handlers,
    read_dataset,
    status_meaning,
    store,
)
from pacscopy.errors import InputError, PacscopyError
from pacscopy.index import insert_columns, load_sql, run

log = logging.getLogger(__name__)

BATCH = 32  # instances per task; at most 2 contexts each, well under 128 per association


class TargetUnreachable(PacscopyError):
    """The target could not be reached at all."""


class Item(NamedTuple):
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: str
    path_bytes: bytes
    dataset_offset: int
    size: int
    mtime_ns: int
    dataset_xxh3: str | None
    new_patient_id: str | None
    new_issuer: str | None
    send_syntax: str  # the syntax to send in (differs when transcoding)


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
    base = load_sql("ops/send_queue").strip().rstrip(";")
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
    while True:
        rows = cur.fetchmany(1000)
        if not rows:
            break
        for r in rows:
            yield Item(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6], r[7], r[8], r[9], r[10], r[11])
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


# -- workers ---------------------------------------------------------------------

def _die_with_parent() -> None:
    """A worker must not outlive a killed ``pacscopy send`` (Linux PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class _Pacer:
    """One byte-rate budget shared by all worker processes (a leaky bucket)."""

    def __init__(self, rate: int | None, shared: Any) -> None:
        self.rate, self.shared = rate, shared

    def wait(self, nbytes: int) -> None:
        if not self.rate:
            return
        with self.shared.get_lock():
            now = time.monotonic()
            start = max(now, self.shared.value)
            self.shared.value = start + nbytes / self.rate
        if start > now:
            time.sleep(start - now)


def _source_for(item: Item) -> tuple[Source, str | None]:
    """What to stream for an item: the file untouched, or a rewritten copy."""
    rewrites = []
    if item.new_patient_id is None and item.send_syntax == item.transfer_syntax_uid:
        st = os.stat(item.path_bytes)
        if st.st_size != item.size or st.st_mtime_ns != item.mtime_ns:
            raise SourceChanged(f"size or mtime changed since the scan ({st.st_size} bytes)")
        return FileSource(item.path_bytes, item.dataset_offset, item.dataset_xxh3, item.size), None
    # Rewriting needs the whole dataset: check the file is still the scanned one first.
    import xxhash

    with open(item.path_bytes, "rb") as f:
        data = f.read()
    if item.dataset_xxh3 and xxhash.xxh3_128_hexdigest(data[item.dataset_offset:]) != item.dataset_xxh3:
        raise SourceChanged("content differs from the scan (xxh3 of the dataset bytes)")
    ds = read_dataset(data, item.dataset_offset, item.transfer_syntax_uid)  # the bytes just checked
    if item.new_patient_id is not None:
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        old = ds.get("PatientID", "")
        ds.PatientID = item.new_patient_id
        if item.new_issuer:
            ds.IssuerOfPatientID = item.new_issuer
        if old:  # keep the old identifier, as PS3.3 C.7.1.1 OtherPatientIDsSequence allows
            other = Dataset()
            other.PatientID = old
            other.TypeOfPatientID = "TEXT"
            seq = list(ds.get("OtherPatientIDsSequence", []))
            ds.OtherPatientIDsSequence = Sequence([*seq, other])
        rewrites.append("patient_id_mapped")
    if item.send_syntax != item.transfer_syntax_uid:
        ds.decompress(generate_instance_uid=False)  # pydicom would mint a new SOPInstanceUID
        rewrites.append(f"transcoded:{item.transfer_syntax_uid}->{item.send_syntax}")
    data = encode_dataset(ds, item.send_syntax)
    return BytesSource(data), ",".join(rewrites)


def _main_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _next_task(tasks: Any, main_pid: int) -> Any:
    """The next batch; None when told to stop or when the main process is gone (kill -9)."""
    while True:
        try:
            return tasks.get(timeout=1.0)
        except _queue.Empty:
            if not _main_alive(main_pid):
                return None


def _worker(wid: int, target: Target, opts: SendOptions, tasks: Any, results: Any, pacer_value: Any,
            stop: Any, main_pid: int) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    import warnings

    warnings.simplefilter("ignore")  # pydicom's value warnings: the checks report those, not the sender
    pacer = _Pacer(opts.max_rate, pacer_value)
    ae = make_ae(opts.calling_ae, opts.timeout)
    assoc: Any = None
    contexts: set[tuple[str, str]] = set()  # accepted by the target
    proposed: set[tuple[str, str]] = set()  # asked for on the current association
    msg_id = 0

    def emit(item: Item, outcome: str, r: Any = None, error: str | None = None, source: Source | None = None,
             rewritten: str | None = None, status: int | None = None) -> None:
        now = dt.datetime.now()
        results.put({
            "kind": "transfer", "sop_instance_uid": item.sop_instance_uid, "path": item.path,
            "started": r.started if r else now, "finished": r.finished if r else now,
            "bytes": source.length if source is not None and outcome in ("stored", "warning", "failed") else 0,
            "status": status, "outcome": outcome, "error": error,
            "wire_xxh3": source.digest if source is not None and outcome in ("stored", "warning") else None,
            "transfer_syntax_uid": item.send_syntax, "rewritten": rewritten, "association": wid,
        })

    def connect(needed: set[tuple[str, str]]) -> str | None:
        nonlocal assoc, contexts
        if assoc is not None and assoc.is_established:
            assoc.release()
        ae.requested_contexts = []
        for sop_class, ts in sorted(needed):
            ae.add_requested_context(sop_class, [ts])
        assoc = ae.associate(target.host, target.port, ae_title=target.ae, evt_handlers=nodelay_handlers())
        if assoc.is_established:
            contexts = {(c.abstract_syntax, c.transfer_syntax[0]) for c in assoc.accepted_contexts}
            return None
        contexts = set()
        if assoc.is_rejected:
            return "association rejected"
        if assoc.is_aborted:
            return "association aborted"
        return "connection failed (refused, reset or timed out)"

    while not stop.is_set():
        batch = _next_task(tasks, main_pid)
        if batch is None:
            break
        needed = {(it.sop_class_uid, it.send_syntax) for it in batch}
        down_since: float | None = None
        for n, item in enumerate(batch):
            attempts = 0
            while True:
                if stop.is_set() or not _main_alive(main_pid):
                    results.put({"kind": "unsent", "reason": "interrupted", "count": len(batch) - n})
                    stop.set()
                    break
                pair = (item.sop_class_uid, item.send_syntax)
                if assoc is None or not assoc.is_established or pair not in proposed:
                    proposed = needed | {pair}
                    err = connect(proposed)
                    if err:
                        emit(item, "retry", error=err)
                        down_since = down_since or time.monotonic()
                        if time.monotonic() - down_since > opts.wait_for_target:
                            results.put({"kind": "target_down", "error": err,
                                         "count": sum(1 for _ in batch[n:])})
                            stop.set()
                            break
                        time.sleep(min(30.0, opts.backoff * 2 ** min(attempts, 5)))
                        attempts += 1
                        continue
                    down_since = None
                if pair not in contexts:
                    emit(item, "failed", error=f"target refused the presentation context "
                                               f"{item.sop_class_uid} / {item.send_syntax}")
                    break
                try:
                    source, rewritten = _source_for(item)
                except SourceChanged as e:
                    results.put({"kind": "source_changed", "path": item.path,
                                 "sop_instance_uid": item.sop_instance_uid, "detail": str(e)})
                    emit(item, "failed", error=f"source_changed: {e}")
                    break
                except OSError as e:
                    emit(item, "failed", error=f"cannot read the file: {e.strerror}")
                    break
                except Exception as e:  # a rewrite that pydicom cannot do
                    emit(item, "failed", error=f"cannot rewrite: {type(e).__name__}: {e}")
                    break
                pacer.wait(source.length)
                msg_id = msg_id % 65535 + 1
                try:
                    r = store(assoc, source, item.sop_class_uid, item.sop_instance_uid, item.send_syntax, msg_id)
                except SourceChanged as e:
                    results.put({"kind": "source_changed", "path": item.path,
                                 "sop_instance_uid": item.sop_instance_uid, "detail": str(e)})
                    emit(item, "failed", error=f"source_changed: {e}")
                    break
                except Exception as e:  # pynetdicom's own errors after an abort
                    r = None
                    err = f"{type(e).__name__}: {e}"
                finally:
                    if isinstance(source, FileSource):
                        source.close()
                if r is not None:
                    err = r.error
                status = r.status if r is not None else None
                if status == STORED or status in STORED_WARNINGS:
                    emit(item, "stored" if status == STORED else "warning", r, None, source, rewritten, status)
                    break
                retryable = status is None or 0xA700 <= status <= 0xA7FF
                if status is not None and not retryable:
                    emit(item, "failed", r, status_meaning(status), source, rewritten, status)
                    break
                attempts += 1
                if r is None or r.association_lost or not assoc.is_established:
                    assoc = None
                if attempts > opts.retries:
                    emit(item, "failed", r, f"gave up after {attempts} attempts: {err or status_meaning(status)}",
                         source, rewritten, status)
                    break
                emit(item, "retry", r, err or status_meaning(status), source, rewritten, status)
                time.sleep(min(30.0, opts.backoff * 2 ** (attempts - 1)))
            if stop.is_set():
                break
    if assoc is not None and assoc.is_established:
        assoc.release()
    results.put({"kind": "done", "worker": wid})


# -- the run ---------------------------------------------------------------------

_TRANSFER_COLS = ("run_id", "target", "sop_instance_uid", "path", "started", "finished", "bytes", "status",
                  "status_hex", "status_meaning", "outcome", "error", "wire_xxh3", "transfer_syntax_uid",
                  "rewritten", "association")


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
    queued, qbytes = queue_size(con, target, opts)
    run_id = run(con, "ops/send_start", {
        "target": str(target), "associations": opts.associations, "max_rate": opts.max_rate,
        "window": str(opts.window) if opts.window else None,
        "selection": " ".join(x for x in (f"where {opts.where}" if opts.where else "",
                                          f"limit {opts.limit}" if opts.limit is not None else "") if x) or None,
        "queued": queued,
    }).fetchone()[0]
    summary = SendSummary(run_id, str(target), queued, qbytes)
    if on_total:
        on_total(queued, qbytes)
    if not queued:
        _finish(con, summary)
        return summary
    started = time.monotonic()
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["pacscopy.send"])
    n = max(1, min(opts.associations, (queued + BATCH - 1) // BATCH))
    tasks = ctx.Queue(maxsize=n * 2)
    results = ctx.Queue()
    stop = ctx.Event()
    pacer_value = ctx.Value("d", 0.0)
    workers = [ctx.Process(target=_worker, args=(i + 1, target, opts, tasks, results, pacer_value, stop, os.getpid()),
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
                msg = results.get(timeout=0.5)
            except _queue.Empty:
                if not any(w.is_alive() for w in workers):
                    break
                continue
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
            elif kind == "target_down":
                summary.outcome = "target_down"
                summary.target_error = msg["error"]
            elif kind == "unsent":
                summary.outcome = "interrupted"
            if pending and (len(pending) >= 500 or time.monotonic() - last_flush > 1.0):
                _write_transfers(con, summary, target, pending)
                pending = []
                last_flush = time.monotonic()
    except KeyboardInterrupt:
        stop.set()
        summary.outcome = "interrupted"
        raise
    finally:
        _write_transfers(con, summary, target, pending)
        if changed:
            insert_columns(con, "ops/insert_source_changed", {
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
        key = (f"0x{msg['status']:04X} {status_meaning(msg['status'])}" if msg["status"] is not None
               else (msg["error"] or "failed").split(":")[0])
        s.failed_by_status[key] = s.failed_by_status.get(key, 0) + 1
    elif o == "retry":
        s.retries += 1


def _write_transfers(con: duckdb.DuckDBPyConnection, s: SendSummary, target: Target,
                     rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols: dict[str, list[Any]] = {c: [] for c in _TRANSFER_COLS}
    for r in rows:
        st = r["status"]
        r = {**r, "run_id": s.run_id, "target": str(target),
             "status_hex": None if st is None else f"0x{st:04X}",
             "status_meaning": None if st is None and r["outcome"] != "retry" else status_meaning(st)}
        for c in _TRANSFER_COLS:
            cols[c].append(r.get(c))
    con.execute("BEGIN TRANSACTION")
    try:
        insert_columns(con, "ops/insert_transfers", cols)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def _finish(con: duckdb.DuckDBPyConnection, s: SendSummary) -> None:
    left = s.left
    if s.outcome == "complete" and left:
        s.outcome = "incomplete"
    s.not_sent = {}
    if s.failed:
        s.not_sent["failed"] = s.failed
    if left - s.failed > 0:
        why = {"target_down": "target unreachable", "interrupted": "interrupted"}.get(s.outcome, "not attempted")
        s.not_sent[f"not attempted: {why}"] = left - s.failed
    run(con, "ops/send_finish", {"run_id": s.run_id, "stored": s.stored, "warnings": s.warnings,
                                 "failed": s.failed, "not_sent": left, "bytes": s.bytes_sent,
                                 "outcome": s.outcome})


def load_patient_map(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """Load ``old_id,new_id[,issuer]`` rows into ``patient_map``; errors name the line."""
    import csv

    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    olds, news, issuers = [], [], []
    with f:
        reader = csv.reader(f)
        for row in reader:
            line = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if line == 1 and row[0].strip().lower() in ("old_id", "old_patient_id", "old"):
                continue
            if len(row) not in (2, 3):
                raise InputError(f"{path}, line {line}: expected old_id,new_id[,issuer], found {len(row)} fields")
            old, new = row[0].strip(), row[1].strip()
            if not old or not new:
                raise InputError(f"{path}, line {line}: old and new PatientID must not be empty")
            if old in olds:
                raise InputError(f"{path}, line {line}: PatientID {old!r} is mapped twice")
            olds.append(old)
            news.append(new)
            issuers.append(row[2].strip() or None if len(row) == 3 else None)
    if not olds:
        raise InputError(f"{path}: no mappings in the file")
    con.execute("BEGIN TRANSACTION")
    try:
        insert_columns(con, "ops/insert_patient_map", {"old": olds, "new": news, "issuer": issuers},
                       source=str(path))
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return len(olds)
