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
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, NamedTuple

import duckdb
import xxhash

from pacscopy.check.checks import content_digest, digest_dataset
from pacscopy.dicom.net import Target, make_ae, nodelay_handlers
from pacscopy.errors import PacscopyError
from pacscopy.index import fetch, insert_columns, run

log = logging.getLogger(__name__)

FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND
GET = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Query/Retrieve Information Model - GET
MOVE = "1.2.840.10008.5.1.4.1.2.2.2"  # Study Root Query/Retrieve Information Model - MOVE
COMMIT = "1.2.840.10008.1.20.1"  # Storage Commitment Push Model SOP Class
COMMIT_INSTANCE = "1.2.840.10008.1.20.1.1"
MODES = ("find", "commit", "retrieve")
#: attributes pacscopy itself rewrites when a PatientID is mapped
MAPPED_ATTRIBUTES = {"PatientID", "IssuerOfPatientID", "OtherPatientIDsSequence"}


class VerifyError(PacscopyError):
    """The target cannot be verified at all (unreachable, refuses the service)."""


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

    @property
    def ok(self) -> bool:
        return self.checked > 0 and self.counts.get("verified", 0) == self.checked


def candidates(con: duckdb.DuckDBPyConnection, target: Target, sample: float | None = None) -> list[Candidate]:
    """Instances recorded stored on the target; a reproducible sample if asked (by UID hash)."""
    out = []
    for r in run(con, "ops/verify/verify_candidates", {"target": str(target)}).fetchall():
        c = Candidate(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], r[6], r[7], r[8])
        if sample is not None and sample < 100:
            if xxhash.xxh3_64_intdigest(c.sop_instance_uid.encode()) % 10000 >= sample * 100:
                continue
        out.append(c)
    return out


def verify(
    con: duckdb.DuckDBPyConnection,
    target: Target,
    mode: str = "find",
    *,
    sample: float | None = None,
    calling_ae: str = "PACSCOPY",
    timeout: float = 30,
    port: int = 0,
    move: bool = False,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """Verify the instances stored on ``target``; record and return the outcomes."""
    if mode not in MODES:
        raise VerifyError(f"unknown verify mode {mode!r}: use one of {', '.join(MODES)}")
    cands = candidates(con, target, sample)
    if not cands:
        raise VerifyError(f"nothing is recorded as stored on {target}: run 'pacscopy send --target {target}' first")
    if on_total:
        on_total(len(cands))
    if mode == "retrieve":
        outcomes = _verify_retrieve(cands, target, calling_ae, timeout, port, on_progress, move=move)
    else:
        fn = {"find": _verify_find, "commit": _verify_commit}[mode]
        outcomes = fn(cands, target, calling_ae, timeout, port, on_progress)
    _record(con, target, mode, outcomes)
    res = VerifyResult(str(target), mode, len(outcomes))
    for o in outcomes:
        res.counts[o.outcome] = res.counts.get(o.outcome, 0) + 1
    if not res.ok:
        res.problems = fetch(con, "ops/verify/verify_problems", Problem, {"target": str(target), "mode": mode})
    return res


def _record(con: duckdb.DuckDBPyConnection, target: Target, mode: str, outcomes: list[Outcome]) -> None:
    con.execute("BEGIN TRANSACTION")
    try:
        insert_columns(con, "ops/verify/insert_verifications", {
            "sop_instance_uid": [o.sop_instance_uid for o in outcomes],
            "verified_at": [o.at for o in outcomes],
            "outcome": [o.outcome for o in outcomes],
            "detail": [o.detail for o in outcomes],
            "header_diff": [o.header_diff for o in outcomes],
            "pixels_equal": [o.pixels_equal for o in outcomes],
        }, target=str(target), mode=mode)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def _associate(target: Target, calling_ae: str, timeout: float, contexts: Iterable[tuple[str, list[str]]],
               what: str, ext_neg: list[Any] | None = None, handlers: list[Any] | None = None) -> Any:
    ae = make_ae(calling_ae, timeout)
    for abstract, syntaxes in contexts:
        ae.add_requested_context(abstract, syntaxes)
    assoc = ae.associate(target.host, target.port, ae_title=target.ae, ext_neg=ext_neg,
                         evt_handlers=[*nodelay_handlers(), *(handlers or [])])
    if not assoc.is_established:
        import socket

        try:
            socket.create_connection((target.host, target.port), timeout=min(timeout, 5)).close()
            reachable = True
        except OSError:
            reachable = False
        why = ("could not be reached" if not reachable
               else "rejected the association" if assoc.is_rejected
               else "aborted the association (no acceptable presentation context?)")
        raise VerifyError(f"{target} {why} for {what}: check AE title, host, port and that it knows {calling_ae}")
    return assoc


# -- find ---------------------------------------------------------------------------

def _find_sops(assoc: Any, keys: dict[str, str]) -> tuple[set[str] | None, str | None]:
    """Run one IMAGE-level C-FIND; return (SOPInstanceUIDs, None) or (None, error)."""
    from pydicom.dataset import Dataset

    q = Dataset()
    q.QueryRetrieveLevel = "IMAGE"
    for k, v in keys.items():
        setattr(q, k, v)
    q.SOPInstanceUID = ""
    found: set[str] = set()
    for status, ident in assoc.send_c_find(q, FIND):
        if not status or "Status" not in status:
            return None, "no response to C-FIND (timeout or association aborted)"
        st = int(status.Status)
        if st in (0xFF00, 0xFF01):
            if ident is not None and ident.get("SOPInstanceUID"):
                found.add(str(ident.SOPInstanceUID))
        elif st == 0x0000:
            return found, None
        else:
            return None, f"C-FIND failed with status 0x{st:04X}"
    return found, None


def _verify_find(cands: list[Candidate], target: Target, calling_ae: str, timeout: float, port: int,
                 on_progress: Callable[[int], None] | None) -> list[Outcome]:
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    assoc = _associate(target, calling_ae, timeout, [(FIND, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])],
                       "C-FIND")
    if not any(c.abstract_syntax == FIND for c in assoc.accepted_contexts):
        assoc.release()
        raise VerifyError(f"{target} does not accept Study Root C-FIND: use --mode commit or retrieve")
    out: list[Outcome] = []
    try:
        for (study, series), group in groupby(cands, key=lambda c: (c.study_instance_uid, c.series_instance_uid)):
            members = list(group)
            found, err = _find_sops(assoc, {"StudyInstanceUID": study, "SeriesInstanceUID": series})
            if found is None:
                # some targets want IMAGE queries per study only
                if not assoc.is_established:
                    assoc = _associate(target, calling_ae, timeout,
                                       [(FIND, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])], "C-FIND")
                found, err = _find_sops(assoc, {"StudyInstanceUID": study})
            for c in members:
                if found is None:
                    out.append(Outcome(c.sop_instance_uid, "failed", err))
                elif c.sop_instance_uid in found:
                    out.append(Outcome(c.sop_instance_uid, "verified", "listed by C-FIND"))
                else:
                    out.append(Outcome(c.sop_instance_uid, "missing_on_target",
                                       f"not listed by C-FIND in series {series}"))
            if on_progress:
                on_progress(len(members))
    finally:
        if assoc.is_established:
            assoc.release()
    return out


# -- commit -------------------------------------------------------------------------

def _verify_commit(cands: list[Candidate], target: Target, calling_ae: str, timeout: float, port: int,
                   on_progress: Callable[[int], None] | None) -> list[Outcome]:
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
    try:
        server = listener.start_server(("0.0.0.0", port), block=False,
                                       evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
    except OSError as e:
        raise VerifyError(f"cannot listen on port {port} for commitment reports: {e.strerror}") from None
    out: list[Outcome] = []
    try:
        assoc = _associate(target, calling_ae, timeout, [(COMMIT, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])],
                           "Storage Commitment", ext_neg=[build_role(COMMIT, scu_role=True, scp_role=True)],
                           handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
        if not any(c.abstract_syntax == COMMIT for c in assoc.accepted_contexts):
            assoc.release()
            raise VerifyError(f"{target} does not accept Storage Commitment: use --mode find or retrieve")
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
            if not assoc.is_established:
                assoc = _associate(target, calling_ae, timeout,
                                   [(COMMIT, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])], "Storage Commitment",
                                   ext_neg=[build_role(COMMIT, scu_role=True, scp_role=True)],
                                   handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
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
        if assoc.is_established:
            assoc.release()
        for tuid, chunk in pending.items():
            info = reports.get(tuid)
            if info is None:
                for c in chunk:
                    out.append(Outcome(c.sop_instance_uid, "failed", f"no commitment report within {timeout:.0f} s"))
                continue
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
        if on_progress:
            on_progress(len(cands))
    finally:
        if server is not None:
            server.shutdown()
    return out


def _failure_reason(code: int) -> str:
    return {0x0110: "processing failure", 0x0112: "no such object instance", 0x0213: "resource limitation",
            0x0122: "referenced SOP class not supported", 0x0119: "class / instance conflict",
            0x0131: "duplicate transaction UID"}.get(code, "unknown reason")


# -- retrieve -----------------------------------------------------------------------

def _compare(c: Candidate, got: Any) -> Outcome:
    """Compare a retrieved dataset with the source file: pixels and normalised header."""
    src = content_digest(c.path_bytes)
    if src["content_hash"] is None:
        return Outcome(c.sop_instance_uid, "failed", f"source: {src['note']}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dst = digest_dataset(got)
    a, b = dict(zip(src["keys"], src["values"])), dict(zip(dst["keys"], dst["values"]))
    pixels_equal = a.get("PixelData") == b.get("PixelData")
    expected = MAPPED_ATTRIBUTES if c.rewritten and "patient_id_mapped" in c.rewritten else set()
    diff = sorted(k for k in set(a) | set(b) if k != "PixelData" and a.get(k) != b.get(k) and k not in expected)
    notes = [n for n in (src["note"], dst["note"]) if n]
    if not diff and pixels_equal:
        return Outcome(c.sop_instance_uid, "verified", "retrieved: header and pixels equal"
                       + ("" if src["pixel_decoded"] else "; pixels compared encoded"), [], True)
    parts = []
    if diff:
        parts.append("header differs in: " + ", ".join(diff))
    parts.append("pixels equal" if pixels_equal else "PIXELS DIFFER")
    if notes:
        parts.append("; ".join(notes))
    return Outcome(c.sop_instance_uid, "mismatch", "; ".join(parts), diff, pixels_equal)


def _verify_retrieve(cands: list[Candidate], target: Target, calling_ae: str, timeout: float, port: int,
                     on_progress: Callable[[int], None] | None, move: bool = False) -> list[Outcome]:
    """C-GET each instance back (or C-MOVE it to our own SCP on ``port``) and compare."""
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, build_role, evt

    received: dict[str, Any] = {}
    arrived = threading.Condition()

    def on_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        with arrived:
            received[str(ds.SOPInstanceUID)] = ds
            arrived.notify_all()
        return 0x0000

    plain: list[str] = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    by_class: dict[str, set[str]] = defaultdict(set)
    for c in cands:
        by_class[c.sop_class_uid].add(c.transfer_syntax_uid)
    classes = sorted(by_class)
    server = None
    if move:
        if not port:
            raise VerifyError("C-MOVE needs --port: the port of pacscopy's own SCP, known to the target as "
                              f"{calling_ae}")
        listener = make_ae(calling_ae, timeout)
        for cx in AllStoragePresentationContexts:
            assert cx.abstract_syntax is not None
            listener.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        for cls in classes:
            listener.add_supported_context(cls, ALL_TRANSFER_SYNTAXES)
        try:
            server = listener.start_server(("0.0.0.0", port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, on_store), *nodelay_handlers()])
        except OSError as e:
            raise VerifyError(f"cannot listen on port {port} for C-MOVE: {e.strerror}") from None
    out: list[Outcome] = []
    try:
        for i in range(0, len(classes), 40):
            chunk_classes = set(classes[i : i + 40])
            model = MOVE if move else GET
            contexts: list[tuple[str, list[str]]] = [(model, plain), (FIND, plain)]
            roles = []
            if not move:
                for cls in sorted(chunk_classes):
                    # one syntax per context, so the target can return each object as it holds it
                    for ts in sorted(by_class[cls] | set(plain)):
                        contexts.append((cls, [ts]))
                    roles.append(build_role(cls, scp_role=True))
            what = "C-MOVE" if move else "C-GET"

            def connect() -> Any:
                return _associate(target, calling_ae, timeout, contexts, what, ext_neg=roles or None,
                                  handlers=[(evt.EVT_C_STORE, on_store)])

            assoc = connect()
            if not any(cx.abstract_syntax == model for cx in assoc.accepted_contexts):
                assoc.release()
                if not move:
                    return _verify_retrieve(cands, target, calling_ae, timeout, port, on_progress, move=True) \
                        if port else _raise(VerifyError(
                            f"{target} does not accept Study Root C-GET: give --port (an SCP port the target knows "
                            f"as {calling_ae}) to retrieve with C-MOVE, or use --mode find or commit"))
                raise VerifyError(f"{target} accepts neither C-GET nor C-MOVE: use --mode find or commit")
            try:
                for c in (c for c in cands if c.sop_class_uid in chunk_classes):
                    q = Dataset()
                    q.QueryRetrieveLevel = "IMAGE"
                    q.StudyInstanceUID = c.study_instance_uid
                    q.SeriesInstanceUID = c.series_instance_uid
                    q.SOPInstanceUID = c.sop_instance_uid
                    if not assoc.is_established:
                        assoc = connect()
                    final = None
                    responses = (assoc.send_c_move(q, calling_ae, MOVE) if move else assoc.send_c_get(q, GET))
                    for status, _ in responses:
                        if status and "Status" in status:
                            final = int(status.Status)
                    with arrived:  # a C-MOVE's sub-operation arrives on another association
                        if move and final == 0x0000:
                            arrived.wait_for(lambda: c.sop_instance_uid in received, timeout=5)
                        got = received.pop(c.sop_instance_uid, None)
                    if got is not None:
                        out.append(_compare(c, got))
                    else:
                        out.append(_not_retrieved(assoc, c, what, final))
                    if on_progress:
                        on_progress(1)
            finally:
                if assoc.is_established:
                    assoc.release()
    finally:
        if server is not None:
            server.shutdown()
    return out


def _raise(e: Exception) -> Any:
    raise e


def _not_retrieved(assoc: Any, c: Candidate, what: str, final: int | None) -> Outcome:
    """Nothing came back: missing if C-FIND does not list it either, else a failure."""
    text = f"no answer to {what}" if final is None else (
        f"{what} returned nothing" if final in (0x0000, 0xB000, 0xFF00) else f"{what} failed with status 0x{final:04X}")
    # Many targets answer a retrieve of an unknown instance with a failure: ask C-FIND.
    listed: set[str] | None = None
    if assoc.is_established and any(cx.abstract_syntax == FIND for cx in assoc.accepted_contexts):
        listed, _ = _find_sops(assoc, {"StudyInstanceUID": c.study_instance_uid,
                                       "SeriesInstanceUID": c.series_instance_uid})
    if listed is not None and c.sop_instance_uid not in listed:
        return Outcome(c.sop_instance_uid, "missing_on_target", f"{text}; not listed by C-FIND")
    return Outcome(c.sop_instance_uid, "failed", text)
