"""The send worker: one process, one association at a time, C-STOREs streamed from disk.

Kept apart from :mod:`pacscopy.send.send` so that a worker process does not
import DuckDB: the workers are forked from a forkserver that preloads this
module (:mod:`pacscopy.processes`).
Results go back to the main process (the only writer of the index) in small
batches; an attempt whose result never arrives is simply not recorded as
stored and is sent again by the next run.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import queue as _queue
import signal
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from pacscopy.dicom.codec import encode_dataset, read_dataset
from pacscopy.dicom.peer import STORED, STORED_WARNINGS, Target, rejection_advice, status_meaning
from pacscopy.dicom.storelink import BytesSource, FileSource, Source, StoreLink, StoreResult
from pacscopy.errors import AssociationFailed, SourceChanged

#: A worker sends its results after this many attempts or this many seconds, whichever comes first.
RESULTS_EVERY = 16
RESULTS_SECONDS = 0.2
#: A worker that has stored nothing yet stops the run when this many instances in a row failed the same way.
STREAK = 3


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
    manifest_set: tuple[tuple[str, str], ...] | None = None  # (keyword, value): the old PACS's database values
    manifest_load: int | None = None  # the manifest load they come from


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker needs of the run's options (picklable without the main process's modules)."""

    calling_ae: str
    timeout: float
    retries: int
    backoff: float
    wait_for_target: float
    max_rate: int | None


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

    def wait(self, nbytes: int) -> float:
        """Wait for ``nbytes``' turn; return the seconds waited."""
        if not self.rate:
            return 0.0
        with self.shared.get_lock():
            now = time.monotonic()
            start = max(now, self.shared.value)
            self.shared.value = start + nbytes / self.rate
        if start > now:
            time.sleep(start - now)
        return max(0.0, start - now)


def _source_for(item: Item) -> tuple[Source, str | None]:
    """What to stream for an item: the file untouched, or a rewritten copy."""
    rewrites = []
    if item.new_patient_id is None and not item.manifest_set and item.send_syntax == item.transfer_syntax_uid:
        return FileSource(item.path_bytes, item.dataset_offset, item.dataset_xxh3, item.size, item.mtime_ns), None
    # Rewriting needs the whole dataset: check the file is still the scanned one first.
    import xxhash

    with open(item.path_bytes, "rb") as f:
        data = f.read()
    if item.dataset_xxh3 and xxhash.xxh3_128_hexdigest(data[item.dataset_offset:]) != item.dataset_xxh3:
        raise SourceChanged("content differs from the scan (xxh3 of the dataset bytes)")
    ds = read_dataset(data, item.dataset_offset, item.transfer_syntax_uid)  # the bytes just checked
    if item.manifest_set:  # the old PACS's database holds the corrections (pacscopy manifest)
        old = ds.get("PatientID", "")
        for keyword, value in item.manifest_set:
            setattr(ds, keyword, value)
        if any(k == "PatientID" for k, _ in item.manifest_set):
            _keep_old_patient_id(ds, old)
        rewrites.append(f"manifest#{item.manifest_load}:" + "+".join(k for k, _ in item.manifest_set))
    if item.new_patient_id is not None:
        old = ds.get("PatientID", "")
        ds.PatientID = item.new_patient_id
        if item.new_issuer:
            ds.IssuerOfPatientID = item.new_issuer
        _keep_old_patient_id(ds, old)
        rewrites.append("patient_id_mapped")
    if item.send_syntax != item.transfer_syntax_uid:
        from pacscopy.send.transcode import rewrite_syntax

        rewrite_syntax(ds, item.transfer_syntax_uid, item.send_syntax)
        rewrites.append(f"transcoded:{item.transfer_syntax_uid}->{item.send_syntax}")
    data = encode_dataset(ds, item.send_syntax)
    return BytesSource(data), ",".join(rewrites)


def streak_key_of(r: StoreResult | None) -> str | None:
    """How an attempt failed, when it may be the target refusing us rather than this object: a failure
    status (not 0xA7xx, out of resources: that passes), or the association lost during the C-STORE."""
    if r is None:
        return None
    if r.status is not None:
        if r.status == STORED or r.status in STORED_WARNINGS or 0xA700 <= r.status <= 0xA7FF:
            return None
        return f"0x{r.status:04X} {status_meaning(r.status)}"
    if r.association_lost and r.error:
        return r.error
    return None


def _keep_old_patient_id(ds: Any, old: str) -> None:
    """Keep a replaced PatientID in OtherPatientIDsSequence, as PS3.3 C.7.1.1 allows."""
    if not old:
        return
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    other = Dataset()
    other.PatientID = old
    other.TypeOfPatientID = "TEXT"
    seq = list(ds.get("OtherPatientIDsSequence", []))
    ds.OtherPatientIDsSequence = Sequence([*seq, other])


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


def worker(wid: int, target: Target, opts: WorkerOptions, tasks: Any, results: Any, pacer_value: Any,
           stop: Any, main_pid: int) -> None:
    """A worker process's main: take batches of items, send them, report every attempt."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    import warnings

    warnings.simplefilter("ignore")  # pydicom's value warnings: the checks report those, not the sender
    pacer = _Pacer(opts.max_rate, pacer_value)
    link: StoreLink | None = None
    proposed: set[tuple[str, str]] = set()  # asked for on the current association
    msg_id = 0
    out: list[dict[str, Any]] = []
    last_post = time.monotonic()

    def post(msg: dict[str, Any], now: bool = False) -> None:
        """Queue a result for the main process; sent in batches (one pickle and pipe write per batch)."""
        out.append(msg)
        if now or msg["kind"] != "transfer" or len(out) >= RESULTS_EVERY \
                or time.monotonic() - last_post > RESULTS_SECONDS:
            flush()

    def flush() -> None:
        nonlocal last_post
        if out:
            results.put(list(out))
            out.clear()
        last_post = time.monotonic()

    checked = 0.0

    def should_stop() -> bool:
        """Told to stop, or the main process is gone; asked at most every 50 ms (each asking is a system call)."""
        nonlocal checked
        now = time.monotonic()
        if now - checked < 0.05:
            return False
        checked = now
        return stop.is_set() or not _main_alive(main_pid)

    def emit(item: Item, outcome: str, r: Any = None, error: str | None = None, source: Source | None = None,
             rewritten: str | None = None, status: int | None = None, started: dt.datetime | None = None) -> None:
        now = dt.datetime.now()
        post({
            "kind": "transfer", "sop_instance_uid": item.sop_instance_uid, "path": item.path,
            "started": r.started if r else started or now, "finished": r.finished if r else now,
            "bytes": source.length if source is not None and outcome in ("stored", "warning", "failed") else 0,
            "status": status, "outcome": outcome, "error": error,
            "status_meaning": status_meaning(status) if status is not None or outcome == "retry" else None,
            "wire_xxh3": source.digest if source is not None and outcome in ("stored", "warning") else None,
            "transfer_syntax_uid": item.send_syntax, "rewritten": rewritten, "association": wid,
        })

    def connect(needed: set[tuple[str, str]]) -> AssociationFailed | None:
        nonlocal link
        if link is not None:
            link.close()
            link = None
        try:
            link = StoreLink.open(target, opts.calling_ae, sorted(needed), opts.timeout)
        except AssociationFailed as e:
            return e
        return None

    def source_changed(item: Item, e: SourceChanged) -> None:
        post({"kind": "source_changed", "path": item.path, "sop_instance_uid": item.sop_instance_uid,
              "detail": str(e)})
        emit(item, "failed", error=f"source_changed: {e}")

    def refused(why: str) -> None:
        """The target refuses everything: stop the run (every worker) with the reason."""
        post({"kind": "target_refused", "error": why})
        stop.set()

    # Until this worker has stored something, an instance that fails in a way that may be the target's
    # verdict on us (an abort, a failure status) is put back at the end of the batch instead of being
    # retried at once, so that the next attempt is on another instance: STREAK instances in a row failing
    # the same way stop the run within seconds (a target that aborts every C-STORE from an AE it does not
    # know would otherwise cost every instance its retries and backoff).
    stored_any = False
    streak_key: str | None = None
    streak: set[str] = set()

    while not stop.is_set():
        flush()  # everything so far is reported before waiting for more work
        batch = _next_task(tasks, main_pid)
        if batch is None:
            break
        needed = {(it.sop_class_uid, it.send_syntax) for it in batch}
        down_since: float | None = None
        work: deque[tuple[Item, int]] = deque((it, 0) for it in batch)
        while work:
            item, attempts = work.popleft()
            paced = reopened = False
            while True:
                if should_stop():
                    post({"kind": "unsent", "reason": "interrupted", "count": len(work) + 1})
                    stop.set()
                    break
                pair = (item.sop_class_uid, item.send_syntax)
                if link is None or not link.alive or pair not in proposed:
                    proposed = needed | {pair}
                    tried = dt.datetime.now()  # a failed attempt is recorded with when it began and ended
                    failure = connect(proposed)
                    if failure is not None:
                        cerr = str(failure)
                        if failure.permanent:
                            advice = rejection_advice(failure.reason, opts.calling_ae, target)
                            emit(item, "failed", error=cerr, started=tried)
                            refused(f"{cerr}: {advice}")
                            break
                        emit(item, "retry", error=cerr, started=tried)
                        down_since = down_since or time.monotonic()
                        if time.monotonic() - down_since > opts.wait_for_target:
                            post({"kind": "target_down", "error": cerr, "count": len(work) + 1,
                                  "waited": time.monotonic() - down_since})
                            stop.set()
                            break
                        time.sleep(min(30.0, opts.backoff * 2 ** min(attempts, 5)))
                        attempts += 1
                        continue
                    down_since = None
                assert link is not None
                if link.context_id(*pair) is None:
                    why = link.refused.get(pair, "not accepted")
                    emit(item, "failed", error=f"target refused the presentation context "
                                               f"{item.sop_class_uid} / {item.send_syntax} ({why})")
                    break
                try:
                    source, rewritten = _source_for(item)
                except SourceChanged as e:
                    source_changed(item, e)
                    break
                except OSError as e:
                    emit(item, "failed", error=f"cannot read the file: {e.strerror}")
                    break
                except Exception as e:  # a rewrite that pydicom cannot do
                    emit(item, "failed", error=f"cannot rewrite: {type(e).__name__}: {e}")
                    break
                waited = 0.0
                if not paced:  # a reconnect after the wait below must not pay for the same bytes twice
                    waited = pacer.wait(source.length)
                    paced = True
                if waited and not reopened and not link.alive:
                    # the target closed the association while it was idle (we waited): reopen once, no attempt
                    # counted; a target that keeps closing at once goes through the retry path and its backoff
                    reopened = True
                    source.close()
                    continue
                msg_id = msg_id % 65535 + 1
                try:
                    r = link.store(source, item.sop_class_uid, item.sop_instance_uid, item.send_syntax, msg_id)
                except SourceChanged as e:
                    source_changed(item, e)
                    break
                except Exception as e:  # store() reports peer trouble itself: this is a bug; the link is unknown
                    r = None
                    err: str | None = f"{type(e).__name__}: {e}"
                finally:
                    source.close()
                if r is not None:
                    err = r.error
                status = r.status if r is not None else None
                if status == STORED or status in STORED_WARNINGS:
                    emit(item, "stored" if status == STORED else "warning", r, None, source, rewritten, status)
                    stored_any = True
                    break
                retryable = status is None or 0xA700 <= status <= 0xA7FF
                key = streak_key_of(r)
                if key is not None and not stored_any:
                    if key != streak_key:
                        streak_key, streak = key, set()
                    streak.add(item.sop_instance_uid)
                    if len(streak) >= STREAK:
                        emit(item, "failed", r, err or status_meaning(status), source, rewritten, status)
                        refused(f"the first {STREAK} instances sent all failed the same way ({key}): "
                                      f"stopped. A target that accepts the association but refuses every object "
                                      f"often does not know the calling AE title {opts.calling_ae!r} (Orthanc: "
                                      f"DicomModalities, DicomAlwaysAllowStore)")
                        break
                if status is not None and not retryable:
                    emit(item, "failed", r, status_meaning(status), source, rewritten, status)
                    break
                attempts += 1
                if r is None or r.association_lost:  # the link aborted itself (abort() is idempotent)
                    link.abort()
                    link = None
                if attempts > opts.retries:
                    emit(item, "failed", r, f"gave up after {attempts} attempts: {err or status_meaning(status)}",
                         source, rewritten, status)
                    break
                emit(item, "retry", r, err or status_meaning(status), source, rewritten, status)
                if key is not None and not stored_any and work:
                    work.append((item, attempts))  # try the next instance first (see STREAK)
                    break
                time.sleep(min(30.0, opts.backoff * 2 ** (attempts - 1)))
            if stop.is_set():
                break
    if link is not None:
        link.close()
    post({"kind": "done", "worker": wid}, now=True)
