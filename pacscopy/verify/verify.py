"""Verify that the target holds what was sent.

Three ways, weakest to strongest:

``find``
    C-FIND at IMAGE level per series (per study where the target refuses
    series keys): is each SOPInstanceUID recorded stored listed by the target?
``commit``
    Storage Commitment: N-ACTION with the SOP class/instance pairs; the target
    answers with N-EVENT-REPORT on the same association or on a new one that
    pacscopy accepts on ``--port``.
``retrieve``
    C-GET each instance (or a sample) back and compare it with the source:
    pixel data (decoded where the syntax differs) and the normalised header.
    Targets rewrite headers and keep the first copy of a duplicate while
    answering success, so a success status is not proof; this is.

Every instance gets one ``verifications`` row per run and mode.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, NamedTuple, Protocol

import duckdb
import xxhash

from pacscopy.dicom.peer import Target, accept_nul_padded_ae_titles, nodelay_handlers, status_meaning
from pacscopy.dicom.scu import COMMIT, COMMIT_INSTANCE, FIND, GET, MOVE, VERIFICATION, alive, associate, find, make_ae
from pacscopy.digest import digest_dataset
from pacscopy.errors import VerifyError
from pacscopy.index import fetch, lock_wait, open_index, run, transaction
from pacscopy.journal import MERGE_EVERY, Journal, Merger, merge, remove, writer_record
from pacscopy.manifest import manifest_rewritten
from pacscopy.send import status_counts

log = logging.getLogger(__name__)

MODES = ("find", "commit", "retrieve")
#: Seconds a verify waits, at its end, for an index another process holds, to record its outcomes.
RECORD_WAIT = 3600.0
#: presentation contexts one association may propose (PS3.8: odd context IDs 1-255)
MAX_CONTEXTS = 128
#: attributes pacscopy itself rewrites when a PatientID is mapped
MAPPED_ATTRIBUTES = {"PatientID", "IssuerOfPatientID", "OtherPatientIDsSequence"}


@dataclass
class Candidate:
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    path_bytes: bytes
    dataset_offset: int
    transfer_syntax_uid: str
    wire_xxh3: str | None
    rewritten: str | None
    sent_patient_id: str | None = None  # the PatientID the target got (after any map): issue 14


@dataclass
class Outcome:
    sop_instance_uid: str
    outcome: str
    detail: str | None = None
    header_diff: list[str] | None = None
    pixels_equal: bool | None = None
    at: dt.datetime = field(default_factory=dt.datetime.now)


class Problem(NamedTuple):
    """An instance whose latest verification is not 'verified'."""

    sop_instance_uid: str
    outcome: str
    detail: str | None


@dataclass
class VerifyResult:
    target: str
    mode: str
    checked: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # the first 50, when not ok
    run_id: int = 0
    resumed: int = 0  # instances checked by the run's earlier, interrupted part (not checked again)

    @property
    def ok(self) -> bool:
        return self.checked > 0 and self.counts.get("verified", 0) == self.checked


def candidates(con: duckdb.DuckDBPyConnection, target: Target, sample: float | None = None,
               only: set[str] | None = None, include: set[str] | None = None) -> list[Candidate]:
    """Instances recorded stored on the target; a reproducible sample if asked (by UID hash).

    ``only``: just these instances; ``include``: these whatever the sample (updates to prove).
    """
    out = []
    for c in fetch(con, "ops/verify/verify_candidates", Candidate, {"target": str(target)}):
        if only is not None and c.sop_instance_uid not in only:
            continue
        if include and c.sop_instance_uid in include:
            pass
        elif sample is not None and sample < 100:
            if xxhash.xxh3_64_intdigest(c.sop_instance_uid.encode()) % 10000 >= sample * 100:
                continue
        out.append(c)
    return out


class Sink(Protocol):
    """Where a verify mode puts each instance's outcome as it is known."""

    def append(self, outcome: Outcome) -> None: ...


class Recorder:
    """A verify's outcomes, recorded as they come: appended to the run's journal (one line per second
    or 500 outcomes, ``fsync``'d), merged into the index by a :class:`pacscopy.journal.Merger` thread
    when it is free. Kill -9 loses at most the last second's outcomes (and the instance in hand)."""

    def __init__(self, index: str, target: Target, mode: str, run_id: int, every: float = MERGE_EVERY) -> None:
        self.index = index
        self.target = str(target)
        self.mode = mode
        self.run_id = run_id
        self.counts: dict[str, int] = {}
        self.buffer: list[Outcome] = []
        self.last_flush = time.monotonic()
        self.journal = Journal.create(index, f"verify-{run_id}-{os.getpid()}")
        self.journal.append("start", **writer_record(run_id, self.target), mode=mode)
        self.merger = Merger(index, self.journal, every)

    def append(self, outcome: Outcome) -> None:
        self.counts[outcome.outcome] = self.counts.get(outcome.outcome, 0) + 1
        self.buffer.append(outcome)
        if len(self.buffer) >= 500 or time.monotonic() - self.last_flush >= 1.0:
            self.flush()

    def flush(self) -> None:
        if self.merger.error is not None:
            e, self.merger.error = self.merger.error, None
            raise e
        if not self.buffer:
            return
        out, self.buffer = self.buffer, []
        self.journal.append("verifications", target=self.target, mode=self.mode, cols={
            "sop_instance_uid": [o.sop_instance_uid for o in out], "verified_at": [o.at for o in out],
            "outcome": [o.outcome for o in out], "detail": [o.detail for o in out],
            "header_diff": [o.header_diff for o in out], "pixels_equal": [o.pixels_equal for o in out]})
        self.last_flush = time.monotonic()
        self.merger.noted()

    def finish(self, checked: int) -> None:
        """Record the rest and the run's end (merged by :meth:`merge_rest`)."""
        self.flush()
        self.merger.stop()
        self.journal.append("verify_finish", params={"run_id": self.run_id, "checked": checked,
                                                     "finished": dt.datetime.now()})

    def close(self, merged: bool) -> None:
        """Stop merging; remove the journal if everything in it is merged (else the next open merges it)."""
        self.merger.stop()
        if merged:
            remove(self.journal.path)
        self.journal.close()


def _selection(sample: float | None, only: set[str] | None, include: set[str] | None) -> str | None:
    """A run's selection (``verify_runs.selection``); None for a run never taken up again (a given set).

    ``include`` (updates to prove, added to a sample) does not count: what the run recorded is skipped anyway.
    """
    if only is not None:
        return None
    return f"sample {sample:g} %" if sample is not None and sample < 100 else "all"


def verify(
    index: str,
    target: Target,
    mode: str = "find",
    *,
    sample: float | None = None,
    calling_ae: str = "PACSCOPY",
    timeout: float = 30,
    port: int = 0,
    move: bool = False,
    bind: str | None = None,
    only: set[str] | None = None,
    include: set[str] | None = None,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Verify the instances stored on ``target``; record and return the outcomes.

    ``bind`` is the address pacscopy's own listener (commitment reports, the
    C-MOVE destination) binds; by default the local address this host uses to
    reach the target, which is the address the target must call back.
    ``only`` restricts the run to those instances; ``include`` adds them to a sample.

    The index at ``index`` is open only to read the candidates and, at the end, to
    merge the last outcomes: every outcome is recorded as it comes (:class:`Recorder`:
    the run's journal, merged when the index is free), so a send, a scan or a status
    run meanwhile, and a verify killed at any moment keeps what it checked. One verify
    per target and mode at a time (:func:`pacscopy.runfolder.take_lock`). A verify of
    the same target, mode and selection as one that did not finish takes that run up
    again and checks only what it did not record (:attr:`VerifyResult.resumed`). The
    last open waits up to :data:`RECORD_WAIT` for a busy index (saying who holds it):
    the outcomes of a long run are not dropped for a short query.
    """
    from pacscopy.runfolder import take_lock

    if mode not in MODES:
        raise VerifyError(f"unknown verify mode {mode!r}: use one of {', '.join(MODES)}")
    lock = take_lock(index, "verify", f"{mode}-{target}", f"a verify --mode {mode} of {target} from index {index}",
                     "one verify per target and mode; wait for it to end or stop it (Ctrl-C)", target=str(target))
    try:
        return _verify_locked(index, target, mode, sample, calling_ae, timeout, port, move, bind, only, include,
                              on_total, on_progress, lock)
    finally:
        lock.release()


def _verify_locked(index: str, target: Target, mode: str, sample: float | None, calling_ae: str, timeout: float,
                   port: int, move: bool, bind: str | None, only: set[str] | None, include: set[str] | None,
                   on_total: Callable[[int], None] | None, on_progress: Callable[[int], None] | None,
                   lock: Any) -> VerifyResult:
    selection = _selection(sample, only, include)
    done: dict[str, str] = {}
    with closing(open_index(index)) as con:  # a killed verify's journal is merged by this open
        cands = candidates(con, target, sample, only, include)
        if not cands:
            raise VerifyError(f"nothing is recorded as stored on {target}: run 'pacscopy send --target {target}' "
                              "first")
        keys = {"target": str(target), "mode": mode}
        row = run(con, "ops/verify/verify_resumable", {**keys, "selection": selection}).fetchone() \
            if selection is not None else None
        with transaction(con):
            if row is not None:
                run_id = int(row[0])
                done = dict(run(con, "ops/verify/verify_done", {**keys, "since": row[1]}).fetchall())
                run(con, "ops/verify/verify_resume", {"run_id": run_id})
            else:
                (run_id,) = run(con, "ops/verify/verify_start", {**keys, "selection": selection,
                                                                "started": dt.datetime.now()}).fetchone() or (0,)
    lock.update(run_id=run_id)
    wanted = {c.sop_instance_uid for c in cands}
    done = {sop: outcome for sop, outcome in done.items() if sop in wanted}
    todo = [c for c in cands if c.sop_instance_uid not in done]
    res = VerifyResult(str(target), mode, run_id=run_id, resumed=len(done))
    for outcome in done.values():
        res.counts[outcome] = res.counts.get(outcome, 0) + 1
    if on_total:
        on_total(len(todo))
    rec = Recorder(index, target, mode, run_id)
    merged = False
    try:
        if todo:
            host = bind if bind is not None else local_address(target)
            if mode == "retrieve":
                _verify_retrieve(todo, target, calling_ae, timeout, port, on_progress, rec, move=move, bind=host)
            elif mode == "commit":
                _verify_commit(todo, target, calling_ae, timeout, port, on_progress, rec, bind=host)
            else:
                _verify_find(todo, target, calling_ae, timeout, port, on_progress, rec)
        for outcome, n in rec.counts.items():
            res.counts[outcome] = res.counts.get(outcome, 0) + n
        res.checked = sum(res.counts.values())
        rec.finish(res.checked)
        with closing(open_index(index, wait=max(lock_wait(), RECORD_WAIT))) as con:
            merge(con, rec.journal.path)
            merged = True
            if not res.ok:
                res.problems = fetch(con, "ops/verify/verify_problems", Problem, {"target": str(target), "mode": mode})
    finally:
        if not merged:
            try:
                rec.flush()  # what was checked before the failure stays recorded
            except Exception:  # noqa: BLE001 - the failure being handled is the one to report
                pass
        rec.close(merged)
    return res


def forget(con: duckdb.DuckDBPyConnection, target: Target, mode: str, note: str | None = None) -> int:
    """Retire every result of ``mode`` for ``target`` recorded so far; return how many rows.

    Nothing is deleted: the retirement is a row of ``verification_forgets``,
    and the views that reconcile reads (``verification_latest``,
    ``verification_evidence``) leave out the rows it covers.
    """
    if mode not in MODES:
        raise VerifyError(f"unknown verify mode {mode!r}: use one of {', '.join(MODES)}")
    with transaction(con):
        status_counts.forget(con)  # retired evidence can change any instance's state: status counts again
        (n,) = run(con, "ops/verify/verify_forget", {"target": str(target), "mode": mode, "note": note,
                                                 "forgotten_at": dt.datetime.now()}).fetchone() or (0,)
    return int(n)


def local_address(target: Target) -> str:
    """The local address this host uses to reach ``target``: the one the target must call back.

    A UDP socket "connected" to the target asks the kernel for the route and
    sends nothing. Falls back to all addresses when the target's name does not
    resolve (the association will say so).
    """
    import socket

    try:
        family, _, _, _, addr = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            return str(s.getsockname()[0])
    except OSError:
        return "0.0.0.0"


def _listen(ae: Any, host: str, port: int, handlers: list[Any], what: str) -> Any:
    try:
        return ae.start_server((host, port), block=False, evt_handlers=handlers)
    except OSError as e:
        raise VerifyError(f"cannot listen on {host}:{port} for {what}: {e.strerror} "
                          "(--bind sets the address, --port the port)") from None


# -- find ---------------------------------------------------------------------------

@dataclass
class _Found:
    """What one IMAGE-level C-FIND returned."""

    sops: set[str]
    matches: int


def _find_sops(assoc: Any, keys: dict[str, str]) -> tuple[_Found | None, str | None]:
    """Run one IMAGE-level C-FIND; return (what it found, None) or (None, error)."""
    from pydicom.dataset import Dataset

    q = Dataset()
    q.QueryRetrieveLevel = "IMAGE"
    for k, v in keys.items():
        setattr(q, k, v)
    if "SOPInstanceUID" not in keys:
        q.SOPInstanceUID = ""
    if not alive(assoc):
        return None, "the association was lost"
    try:
        matches = find(assoc, q, error=VerifyError)
    except VerifyError as e:
        return None, str(e)
    return _Found({str(i.SOPInstanceUID) for i in matches if i.get("SOPInstanceUID")}, len(matches)), None


def _find_one(assoc: Any, c: Candidate) -> tuple[bool | None, str]:
    """Ask for one instance by its own SOPInstanceUID: (listed?, how), None when the query failed.

    Some targets (tiny-pacs) name the same SOPInstanceUID in every match of a
    series query; a match to a query for exactly this UID counts as listed.
    """
    found, err = _find_sops(assoc, {"StudyInstanceUID": c.study_instance_uid,
                                    "SeriesInstanceUID": c.series_instance_uid,
                                    "SOPInstanceUID": c.sop_instance_uid})
    if found is None:
        return None, err or "C-FIND failed"
    if c.sop_instance_uid in found.sops:
        return True, "listed by C-FIND (asked for by its SOPInstanceUID)"
    if found.matches:
        other = ", ".join(sorted(found.sops)) or "no SOPInstanceUID"
        return True, f"listed by C-FIND (asked for by its SOPInstanceUID; the target's match names {other})"
    return False, "not listed by C-FIND, neither in its series nor asked for by its SOPInstanceUID"


def _verify_find(cands: list[Candidate], target: Target, calling_ae: str, timeout: float, port: int,
                 on_progress: Callable[[int], None] | None, out: Sink) -> Sink:
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    contexts: list[tuple[str, list[str]]] = [(FIND, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])]
    assoc = associate(target, calling_ae, timeout, contexts, "C-FIND", error=VerifyError)
    if not any(c.abstract_syntax == FIND for c in assoc.accepted_contexts):
        assoc.release()
        raise VerifyError(f"{target} accepted the association but refused the Study Root C-FIND context: "
                          "use --mode commit or retrieve")
    try:
        for (study, series), group in groupby(cands, key=lambda c: (c.study_instance_uid, c.series_instance_uid)):
            members = list(group)
            if not alive(assoc):
                assoc = associate(target, calling_ae, timeout, contexts, "C-FIND", error=VerifyError)
            found, err = _find_sops(assoc, {"StudyInstanceUID": study, "SeriesInstanceUID": series})
            if found is None:
                # some targets want IMAGE queries per study only
                if not alive(assoc):
                    assoc = associate(target, calling_ae, timeout, contexts, "C-FIND", error=VerifyError)
                found, err = _find_sops(assoc, {"StudyInstanceUID": study})
            for c in members:
                if found is None:
                    out.append(Outcome(c.sop_instance_uid, "failed", err))
                elif c.sop_instance_uid in found.sops:
                    out.append(Outcome(c.sop_instance_uid, "verified", "listed by C-FIND"))
                else:
                    # Before calling it missing, ask for it alone: a dropped or mislabelled match is not a loss.
                    if not alive(assoc):
                        assoc = associate(target, calling_ae, timeout, contexts, "C-FIND", error=VerifyError)
                    listed, how = _find_one(assoc, c)
                    out.append(Outcome(c.sop_instance_uid,
                                       "failed" if listed is None else "verified" if listed else "missing_on_target",
                                       how if listed is not None else f"re-query by SOPInstanceUID failed: {how}"))
            if on_progress:
                on_progress(len(members))
    finally:
        if assoc.is_established:
            assoc.release()
    return out


# -- commit -------------------------------------------------------------------------

def _verify_commit(cands: list[Candidate], target: Target, calling_ae: str, timeout: float, port: int,
                   on_progress: Callable[[int], None] | None, out: Sink, bind: str = "0.0.0.0") -> Sink:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
    from pynetdicom import build_role, evt

    reports: dict[str, Dataset] = {}
    arrived = threading.Condition()

    def on_report(event: Any) -> tuple[int, None]:
        info = event.event_information
        tuid = str(info.get("TransactionUID", ""))
        with arrived:
            reports[tuid] = info
            arrived.notify_all()
        return 0x0000, None

    # A listener for reports on a new association (the target calls us back).
    listener = make_ae(calling_ae, timeout)
    listener.add_supported_context(COMMIT, [ExplicitVRLittleEndian, ImplicitVRLittleEndian], scu_role=True,
                                   scp_role=True)
    accept_nul_padded_ae_titles()
    server = _listen(listener, bind, port, [(evt.EVT_N_EVENT_REPORT, on_report), *nodelay_handlers()],
                     "commitment reports")
    try:
        assoc = associate(target, calling_ae, timeout, [(COMMIT, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])],
                           "Storage Commitment", ext_neg=[build_role(COMMIT, scu_role=True, scp_role=True)],
                           handlers=[(evt.EVT_N_EVENT_REPORT, on_report)], error=VerifyError)
        if not any(c.abstract_syntax == COMMIT for c in assoc.accepted_contexts):
            assoc.release()
            raise VerifyError(f"{target} accepted the association but refused the Storage Commitment context: "
                              "it does not offer Storage Commitment (N-ACTION); use --mode find or retrieve")
        pending: dict[str, list[Candidate]] = {}
        for i in range(0, len(cands), 500):
            chunk = cands[i : i + 500]
            req = Dataset()
            tuid = str(generate_uid())
            req.TransactionUID = tuid
            refs = []
            for c in chunk:
                item = Dataset()
                item.ReferencedSOPClassUID = c.sop_class_uid
                item.ReferencedSOPInstanceUID = c.sop_instance_uid
                refs.append(item)
            req.ReferencedSOPSequence = Sequence(refs)
            if not alive(assoc):
                assoc = associate(target, calling_ae, timeout,
                                   [(COMMIT, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])], "Storage Commitment",
                                   ext_neg=[build_role(COMMIT, scu_role=True, scp_role=True)],
                                   handlers=[(evt.EVT_N_EVENT_REPORT, on_report)], error=VerifyError)
            status, _ = assoc.send_n_action(req, 1, COMMIT, COMMIT_INSTANCE)
            st = int(status.Status) if status and "Status" in status else None
            if st != 0x0000:
                for c in chunk:
                    out.append(Outcome(c.sop_instance_uid, "failed",
                                       "N-ACTION refused" if st is not None else "no answer to N-ACTION"
                                       + (f" (status 0x{st:04X})" if st is not None else "")))
                continue
            pending[tuid] = chunk
            # One transaction at a time: wait for its report before the next N-ACTION. A report
            # arriving while pynetdicom starts another request can stall the association.
            deadline = time.monotonic() + timeout
            with arrived:
                while tuid not in reports and time.monotonic() < deadline:
                    arrived.wait(timeout=0.2)
            time.sleep(0.3)  # pynetdicom answers the report after our handler returns: let it go out
            with arrived:  # recorded as the reports come: a verify killed later keeps them
                answered = [t for t in pending if t in reports]
            for t in answered:
                _commit_outcomes(pending.pop(t), reports[t], timeout, out)
                if on_progress:
                    on_progress(len(chunk))
        if assoc.is_established:
            assoc.release()
        for tuid, chunk in pending.items():
            _commit_outcomes(chunk, reports.get(tuid), timeout, out)
            if on_progress:
                on_progress(len(chunk))
    finally:
        if server is not None:
            server.shutdown()
    return out


def _commit_outcomes(chunk: list[Candidate], info: Any, timeout: float, out: Sink) -> None:
    """The outcomes of one N-ACTION's instances from its report (None: none came)."""
    if info is None:
        for c in chunk:
            out.append(Outcome(c.sop_instance_uid, "failed", f"no commitment report within {timeout:.0f} s"))
        return
    ok = {str(x.ReferencedSOPInstanceUID) for x in info.get("ReferencedSOPSequence", [])}
    failed = {str(x.ReferencedSOPInstanceUID): int(x.get("FailureReason", 0))
              for x in info.get("FailedSOPSequence", [])}
    for c in chunk:
        if c.sop_instance_uid in failed:
            reason = failed[c.sop_instance_uid]
            out.append(Outcome(c.sop_instance_uid, "missing_on_target" if reason == 0x0112 else "failed",
                               f"commitment failed: reason 0x{reason:04X} ({_failure_reason(reason)})"))
        elif c.sop_instance_uid in ok:
            out.append(Outcome(c.sop_instance_uid, "verified", "storage commitment confirmed"))
        else:
            out.append(Outcome(c.sop_instance_uid, "failed", "not named in the commitment report"))


def _failure_reason(code: int) -> str:
    return {0x0110: "processing failure", 0x0112: "no such object instance", 0x0213: "resource limitation",
            0x0122: "referenced SOP class not supported", 0x0119: "class / instance conflict",
            0x0131: "duplicate transaction UID"}.get(code, "unknown reason")


# -- retrieve -----------------------------------------------------------------------

#: C-GET / C-MOVE statuses beyond the general ones (PS3.4 C.4.2.1.5, C.4.3.1.4)
_RETRIEVE_STATUS = {
    0xA701: "Refused: Out of Resources - Unable to calculate number of matches",
    0xA702: "Refused: Out of Resources - Unable to perform sub-operations",
    0xA801: "Refused: Move Destination unknown",
    0xA900: "Identifier does not match SOP Class",
    0xB000: "Sub-operations Complete - One or more Failures or Warnings",
    0xFE00: "Sub-operations terminated due to Cancel",
}


def _source_dataset(c: Candidate) -> Any:
    """The source as it was sent: the file, replayed through the send's own rewrite where it was transcoded.

    A transcode decodes the pixels (pydicom converts YBR to RGB on the way and
    rewrites PhotometricInterpretation, PlanarConfiguration ...): the target
    holds the decoded object, so that is what it is compared with. Re-encoding
    an uncompressed object (big endian, deflated) changes no value.
    """
    import pydicom

    ds = pydicom.dcmread(os.fsdecode(c.path_bytes), force=True)
    if c.rewritten and "transcoded:" in c.rewritten and "PixelData" in ds:
        meta = getattr(ds, "file_meta", None)
        ts = meta.get("TransferSyntaxUID") if meta is not None else None
        if ts is not None and ts.is_compressed:
            ds.decompress(generate_instance_uid=False)
    return ds


def _compare(c: Candidate, got: Any) -> Outcome:
    """Compare a retrieved dataset with what was sent: pixels (decoded) and the normalised header."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            src_ds = _source_dataset(c)
            src = digest_dataset(src_ds)
    except Exception as e:
        text = str(e).splitlines()[0][:160] if str(e) else ""
        return Outcome(c.sop_instance_uid, "failed", f"source: cannot read for comparison: {type(e).__name__}: {text}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dst = digest_dataset(got)
    a, b = dict(zip(src["keys"], src["values"])), dict(zip(dst["keys"], dst["values"]))
    pixels_equal = a.get("PixelData") == b.get("PixelData")
    expected = MAPPED_ATTRIBUTES if c.rewritten and "patient_id_mapped" in c.rewritten else set()
    expected = expected | manifest_rewritten(c.rewritten)
    diff = sorted(k for k in set(a) | set(b) if k != "PixelData" and a.get(k) != b.get(k) and k not in expected
                  and not _same_private(k, src_ds, got))
    if (expected and c.sent_patient_id is not None and "manifest" not in (c.rewritten or "")
            and str(got.get("PatientID", "")).strip() != c.sent_patient_id):
        diff = sorted({*diff, "PatientID"})  # mapped: the target must hold the PatientID it was sent
    notes = [n for n in (src["note"], dst["note"]) if n]
    transcoded = " (as sent: transcoded)" if c.rewritten and "transcoded:" in c.rewritten else ""
    if not diff and pixels_equal:
        return Outcome(c.sop_instance_uid, "verified", "retrieved: header and pixels equal" + transcoded
                       + ("" if src["pixel_decoded"] else "; pixels compared encoded"), [], True)
    parts = []
    if diff:
        parts.append("header differs in: " + ", ".join(diff))
    parts.append("pixels equal" if pixels_equal else "PIXELS DIFFER")
    if notes:
        parts.append("; ".join(notes))
    return Outcome(c.sop_instance_uid, "mismatch", "; ".join(parts) + transcoded, diff, pixels_equal)


def _same_private(key: str, src: Any, dst: Any) -> bool:
    """Is a private element that differs by digest the same value, one side read as UN?

    A target that returns an object in implicit VR turns explicit private
    elements into UN (their VR is nowhere in the data): DS "1.5" comes back as
    the bytes b"1.5 ", UL 7 as b"\\x07\\0\\0\\0", a sequence as its encoded items.
    Such an element is compared by its value bytes.
    """
    if not (key.startswith("(") and key.endswith(")")):
        return False
    try:
        tag = int(key[1:5], 16) << 16 | int(key[6:10], 16)
    except ValueError:
        return False
    if not (tag >> 16) & 1 or tag not in src or tag not in dst:
        return False
    return _same_element(src[tag], dst[tag])


def _le_bytes(elem: Any) -> bytes:
    """An element's value as implicit VR little endian bytes."""
    if isinstance(elem.value, (bytes, bytearray)) and elem.VR in ("UN", "OB"):
        return bytes(elem.value)
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_data_element(fp, elem)
    data = fp.getvalue()
    return data[8:]


def _as_items(elem: Any) -> list[Any] | None:
    """The items of a sequence, also of one read as UN bytes (implicit VR little endian)."""
    from pydicom.sequence import Sequence

    if isinstance(elem.value, Sequence):
        return list(elem.value)
    if elem.VR == "UN" and isinstance(elem.value, (bytes, bytearray)) and bytes(elem.value[:4]) == b"\xfe\xff\x00\xe0":
        from io import BytesIO

        from pydicom.filereader import read_sequence

        try:
            return list(read_sequence(BytesIO(bytes(elem.value)), True, True, len(elem.value), "iso8859"))
        except Exception:
            return None
    return None


def _same_element(x: Any, y: Any) -> bool:
    from pacscopy.digest import normalise

    xi, yi = _as_items(x), _as_items(y)
    if xi is not None or yi is not None:
        return xi is not None and yi is not None and len(xi) == len(yi) and all(
            _same_items(i, j) for i, j in zip(xi, yi))
    if x.VR == "UN" or y.VR == "UN":
        try:
            return _le_bytes(x).rstrip(b"\x00 ") == _le_bytes(y).rstrip(b"\x00 ")
        except Exception:
            return False
    return bool(normalise(x.value) == normalise(y.value))


def _same_items(a: Any, b: Any) -> bool:
    tags = {t for t in (*a.keys(), *b.keys()) if t.element != 0}
    return all(t in a and t in b and _same_element(a[t], b[t]) for t in tags)


def _get_syntaxes(stored: set[str]) -> list[str]:
    """The transfer syntaxes to offer for a C-GET of a class: as stored first, then the plain ones.

    The target picks among the accepted contexts to send each object back;
    offering the stored syntax first keeps it from re-encoding the object (a
    target that returns implicit VR turns explicit private elements into UN).
    """
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    out = sorted(stored)
    for ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        if ts not in out:
            out.append(ts)
    return out


def retrieve_chunks(by_class: dict[str, set[str]], move: bool) -> list[tuple[list[str], list[tuple[str, list[str]]]]]:
    """Group the SOP classes into associations of at most :data:`MAX_CONTEXTS` presentation contexts.

    Returns (classes, contexts) per association. C-GET needs one context per
    class and transfer syntax (each context offers one syntax, so the target
    can return each object as it holds it); C-MOVE needs only the model's.
    """
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    plain: list[str] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    base: list[tuple[str, list[str]]] = [(MOVE if move else GET, plain), (FIND, plain)]
    room = MAX_CONTEXTS - len(base) - 1  # and Verification (scu.associate)
    chunks: list[tuple[list[str], list[tuple[str, list[str]]]]] = []
    classes: list[str] = []
    contexts: list[tuple[str, list[str]]] = []
    for cls in sorted(by_class):
        mine = [] if move else [(cls, [ts]) for ts in _get_syntaxes(by_class[cls])][:room]
        if classes and (len(contexts) + len(mine) > room or (move and len(classes) >= 1000)):
            chunks.append((classes, base + contexts))
            classes, contexts = [], []
        classes.append(cls)
        contexts.extend(mine)
    if classes:
        chunks.append((classes, base + contexts))
    return chunks


def _register_storage_classes(classes: Iterable[str]) -> None:
    """Make pynetdicom's Storage SCP serve these classes (retired, private or newer than its tables).

    pynetdicom accepts a presentation context for any abstract syntax it is
    told to support, but serves a C-STORE only for classes it knows as
    storage: otherwise it aborts the association ("No supported service class
    available for the SOP Class UID"), and the target reports the C-MOVE
    sub-operation failed. pacscopy asked for these instances back, so they are
    storage.
    """
    from pynetdicom.service_class import StorageServiceClass
    from pynetdicom.sop_class import register_uid, uid_to_service_class

    for cls in classes:
        if uid_to_service_class(cls) is not StorageServiceClass:
            try:
                register_uid(cls, "PacscopyStorage_" + cls.replace(".", "_"), StorageServiceClass)
            except ValueError as e:  # not a valid UID: the target's problem, said in the outcome
                log.warning("cannot register SOP class %s for the C-MOVE SCP: %s", cls, e)


def _retrieve_failure(what: str, status: Any, ident: Any, c: Candidate) -> str:
    """The cause of a failed C-GET / C-MOVE, in the target's own words where it gave them."""
    st = int(status.Status)
    meaning = _RETRIEVE_STATUS.get(st) or status_meaning(st)
    parts = [f"{what} failed with status 0x{st:04X} ({meaning})"]
    comment = status.get("ErrorComment")
    if comment:
        parts.append(f"the target says: {str(comment).strip()}")
    counts = [f"{n} {kw}" for kw, n in (("completed", status.get("NumberOfCompletedSuboperations")),
                                          ("failed", status.get("NumberOfFailedSuboperations")),
                                          ("warning", status.get("NumberOfWarningSuboperations")))
              if n not in (None, "")]
    if counts:
        parts.append("sub-operations: " + ", ".join(counts))
    failed = ident.get("FailedSOPInstanceUIDList") if ident is not None else None
    if failed:
        listed = [str(x) for x in (failed if isinstance(failed, (list, tuple)) or type(failed).__name__ == "MultiValue"
                                   else str(failed).split("\\"))]
        parts.append("this instance is in its failed SOP instance list" if c.sop_instance_uid in listed
                     else f"failed SOP instances: {', '.join(listed[:3])}")
    return "; ".join(parts)


def _verify_retrieve(cands: list[Candidate], target: Target, calling_ae: str, timeout: float, port: int,
                     on_progress: Callable[[int], None] | None, out: Sink, move: bool = False,
                     bind: str = "0.0.0.0") -> Sink:
    """C-GET each instance back (or C-MOVE it to our own SCP on ``port``) and compare."""
    from pydicom.dataset import Dataset
    from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, build_role, evt

    received: dict[str, Any] = {}
    arrived = threading.Condition()
    refused_here: dict[str, str] = {}  # C-MOVE: SOP classes our SCP refused on a sub-association

    def on_store(event: Any) -> int:
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
        except Exception as e:  # recorded as the instance's failure
            sop = str(event.request.AffectedSOPInstanceUID)
            with arrived:
                received[sop] = e
                arrived.notify_all()
            return 0xC210
        with arrived:
            received[str(ds.SOPInstanceUID)] = ds
            arrived.notify_all()
        return 0x0000

    def on_accepted(event: Any) -> None:
        for cx in event.assoc.rejected_contexts:
            refused_here[str(cx.abstract_syntax)] = str(cx.result)

    by_class: dict[str, set[str]] = defaultdict(set)
    for c in cands:
        by_class[c.sop_class_uid].add(c.transfer_syntax_uid)
    server = None
    if move:
        if not port:
            raise VerifyError("C-MOVE needs --port: the port of pacscopy's own SCP, known to the target as "
                              f"{calling_ae}")
        accept_nul_padded_ae_titles()
        _register_storage_classes(by_class)
        listener = make_ae(calling_ae, timeout)
        listener.maximum_associations = 16
        for cx in AllStoragePresentationContexts:
            assert cx.abstract_syntax is not None
            listener.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        for cls in sorted(by_class):
            listener.add_supported_context(cls, ALL_TRANSFER_SYNTAXES)
        listener.add_supported_context(VERIFICATION)
        server = _listen(listener, bind, port, [(evt.EVT_C_STORE, on_store), (evt.EVT_ACCEPTED, on_accepted),
                                                *nodelay_handlers()], "C-MOVE")
    model = MOVE if move else GET
    what = "C-MOVE" if move else "C-GET"
    try:
        for chunk_classes, contexts in retrieve_chunks(by_class, move):
            wanted = set(chunk_classes)
            roles = [] if move else [build_role(cls, scp_role=True) for cls in chunk_classes]

            def connect() -> Any:
                return associate(target, calling_ae, timeout, contexts, what, ext_neg=roles or None,
                                  handlers=[(evt.EVT_C_STORE, on_store)], error=VerifyError)

            assoc = connect()
            if not any(cx.abstract_syntax == model for cx in assoc.accepted_contexts):
                assoc.release()
                if not move:
                    if port:
                        return _verify_retrieve(cands, target, calling_ae, timeout, port, on_progress, out, move=True,
                                                bind=bind)
                    raise VerifyError(
                        f"{target} does not accept Study Root C-GET: give --port (an SCP port the target knows "
                        f"as {calling_ae}) to retrieve with C-MOVE, or use --mode find or commit")
                raise VerifyError(f"{target} accepts neither C-GET nor C-MOVE: use --mode find or commit")
            try:
                for c in (c for c in cands if c.sop_class_uid in wanted):
                    q = Dataset()
                    q.QueryRetrieveLevel = "IMAGE"
                    q.StudyInstanceUID = c.study_instance_uid
                    q.SeriesInstanceUID = c.series_instance_uid
                    q.SOPInstanceUID = c.sop_instance_uid
                    if not alive(assoc):
                        assoc = connect()
                    final: Any = None
                    final_ident: Any = None
                    responses = (assoc.send_c_move(q, calling_ae, MOVE) if move else assoc.send_c_get(q, GET))
                    for status, ident in responses:
                        if status and "Status" in status:
                            final, final_ident = status, ident
                    st = int(final.Status) if final is not None else None
                    with arrived:  # a C-MOVE's sub-operation arrives on another association
                        if move and st in (0x0000, 0xB000):
                            arrived.wait_for(lambda: c.sop_instance_uid in received, timeout=5)
                        got = received.pop(c.sop_instance_uid, None)
                    if isinstance(got, Exception):
                        out.append(Outcome(c.sop_instance_uid, "failed",
                                           f"{what}: the object came back but cannot be decoded: {got}"))
                    elif got is not None:
                        out.append(_compare(c, got))
                    else:
                        if st is not None and st not in (0x0000, 0xFF00):
                            text = _retrieve_failure(what, final, final_ident, c)
                        elif st is None:
                            text = (f"no answer to {what}" + ("" if alive(assoc)
                                                               else " (the target aborted the association)"))
                        else:
                            text = f"{what} returned nothing"
                        if move and c.sop_class_uid in refused_here:
                            text += f"; pacscopy's SCP was offered {c.sop_class_uid} and refused it"
                        out.append(_not_retrieved(assoc, c, text))
                    if on_progress:
                        on_progress(1)
            finally:
                if assoc.is_established:
                    assoc.release()
    finally:
        if server is not None:
            server.shutdown()
    return out


def _not_retrieved(assoc: Any, c: Candidate, text: str) -> Outcome:
    """Nothing came back: missing if C-FIND does not list it either, else a failure (not evidence).

    Many targets answer a retrieve of an unknown instance with a failure, so
    C-FIND is asked, by the instance's own SOPInstanceUID, if the association
    is still alive (a dead one would cost the DIMSE timeout).
    """
    if alive(assoc) and any(cx.abstract_syntax == FIND for cx in assoc.accepted_contexts):
        listed, _ = _find_one(assoc, c)
        if listed is False:
            return Outcome(c.sop_instance_uid, "missing_on_target", f"{text}; not listed by C-FIND")
    return Outcome(c.sop_instance_uid, "failed", text)
