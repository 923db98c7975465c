"""pacscopy's built-in receiver: a small archive that stores, finds, returns and commits.

A dry-run target for users and the target of ``scripts/demo``, so the whole
cycle (send, verify, reconcile) runs without a real PACS. It is a Storage SCP
that writes each object as ``<SOPInstanceUID>.dcm`` with the dataset bytes
exactly as received (atomically: temp file + rename), keeps a catalogue of
what it holds (rebuilt from the folder at start), and answers:

* C-ECHO;
* C-FIND (Study Root and Patient Root, STUDY/SERIES/IMAGE levels), with
  NumberOfStudyRelatedInstances and NumberOfSeriesRelatedInstances;
* C-GET of what it holds, byte for byte;
* Storage Commitment Push Model: the N-EVENT-REPORT goes on the same
  association, or on a new one to ``commit_reply`` when given.

Two test hooks imitate real targets: ``coerce`` rewrites attributes of every
stored object (answering 0xB000, like a PACS that coerces headers), and
``commit_fail`` names instances reported as failed in commitment.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, build_role, evt

from pacscopy.dicom.peer import Target, accept_nul_padded_ae_titles, nodelay_handlers
from pacscopy.dicom.scu import COMMIT, COMMIT_INSTANCE, VERIFICATION, request
from pacscopy.errors import InputError

log = logging.getLogger(__name__)

FIND_MODELS = ("1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.2.2.1")  # patient root, study root
GET_MODELS = ("1.2.840.10008.5.1.4.1.2.1.3", "1.2.840.10008.5.1.4.1.2.2.3")


#: What the receiver stores and catalogues; anything else (corrupt, not DICOM) is refused.
CATALOGUED = ("ok", "suspect")


def _refusal(status: str, reason: str | None) -> Any:
    """A C-STORE failure (0xC000, cannot understand) whose ErrorComment says why."""
    from pydicom.dataset import Dataset

    rsp = Dataset()
    rsp.Status = 0xC000
    rsp.ErrorComment = f"{status}: {reason or 'unreadable'}"[:64]
    return rsp


@dataclass
class Held:
    """One object in the receiver's catalogue."""

    path: Path
    sop_class_uid: str
    study_instance_uid: str | None
    series_instance_uid: str | None
    patient_id: str | None


def _uids(value: Any) -> list[str] | None:
    """A query key as a list of values (None: universal match)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        vals = [str(v) for v in value if str(v)]
    else:
        vals = [v for v in str(value).split("\\") if v]
    return vals or None


@dataclass
class Receiver:
    """A small archive on ``host:port`` keeping what it receives in ``storage``."""

    storage: Path
    port: int = 0
    ae_title: str = "PACSCOPY_RX"
    host: str = "127.0.0.1"
    on_store: Callable[[str, Path], None] | None = None
    coerce: dict[str, str] | None = None
    commit_fail: set[str] | None = None
    commit_reply: str | None = None
    received: int = 0
    catalogue: dict[str, Held] = field(default_factory=dict)
    _server: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- the catalogue -------------------------------------------------------
    def _load(self) -> None:
        from pacscopy.scan.parse import inspect_bytes

        for p in self.storage.glob(".*.part"):  # half-written by a receiver that died or hit a full disk
            try:
                p.unlink()
            except OSError as e:
                log.warning("cannot remove the partial file %s: %s", p, e.strerror)
        for p in sorted(self.storage.glob("*.dcm")):
            # Whatever lies in the folder (a damaged or hostile file put there by hand),
            # the receiver starts: what it cannot catalogue is left out, with a warning.
            try:
                ins = inspect_bytes(p.read_bytes())
            except OSError as e:
                log.warning("not catalogued: %s: %s", p.name, e)
                continue
            if ins.status not in CATALOGUED:
                log.warning("not catalogued: %s is %s (%s)", p.name, ins.status, ins.reason)
                continue
            v = ins.values
            if v.get("sop_instance_uid"):
                self.catalogue[v["sop_instance_uid"]] = Held(
                    p, v.get("sop_class_uid") or "", v.get("study_instance_uid"),
                    v.get("series_instance_uid"), v.get("patient_id"))

    def _match(self, ident: Any) -> list[tuple[str, Held]]:
        studies = _uids(ident.get("StudyInstanceUID"))
        series = _uids(ident.get("SeriesInstanceUID"))
        sops = _uids(ident.get("SOPInstanceUID"))
        pid = str(ident.get("PatientID") or "") or None
        with self._lock:
            items = list(self.catalogue.items())
        return [(sop, h) for sop, h in items
                if (studies is None or h.study_instance_uid in studies)
                and (series is None or h.series_instance_uid in series)
                and (sops is None or sop in sops)
                and (pid is None or h.patient_id == pid)
                and h.path.exists()]

    # -- C-STORE -------------------------------------------------------------
    def _handle_store(self, event: Any) -> Any:
        try:
            req = event.request
            sop = str(req.AffectedSOPInstanceUID)
            if not sop or "/" in sop or sop.startswith("."):
                return 0xC210  # cannot understand: no usable SOPInstanceUID
            from pacscopy.scan.parse import inspect_bytes

            raw = event.encoded_dataset(include_meta=True)
            ins = inspect_bytes(raw)
            if ins.status not in CATALOGUED:  # refused, never stored: it could not be catalogued
                return _refusal(ins.status, ins.reason)
            self.storage.mkdir(parents=True, exist_ok=True)
            final = self.storage / f"{sop}.dcm"
            tmp = self.storage / f".{sop}.{threading.get_ident()}.part"
            status = 0x0000
            if self.coerce:
                data = self._coerced(event)
                status = 0xB000  # coercion of data elements
            else:
                data = raw
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, final)
            ds = event.dataset if self.coerce else None
            study = series = pid = None
            v = ins.values if ds is None else {
                "study_instance_uid": ds.get("StudyInstanceUID"), "series_instance_uid": ds.get("SeriesInstanceUID"),
                "patient_id": ds.get("PatientID")}
            study, series, pid = v.get("study_instance_uid"), v.get("series_instance_uid"), v.get("patient_id")
            with self._lock:
                self.catalogue[sop] = Held(final, str(req.AffectedSOPClassUID), study and str(study),
                                           series and str(series), pid and str(pid))
                self.received += 1
            if self.on_store:
                self.on_store(sop, final)
            return status
        except OSError as e:
            log.error("cannot store %s: %s", getattr(event.request, "AffectedSOPInstanceUID", "?"), e)
            if "tmp" in locals():
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            return 0xA700  # out of resources: the sender will retry

    def _coerced(self, event: Any) -> bytes:
        from io import BytesIO

        from pydicom.filewriter import dcmwrite

        ds = event.dataset
        ds.file_meta = event.file_meta
        for k, v in (self.coerce or {}).items():
            setattr(ds, k, v)
        buf = BytesIO()
        dcmwrite(buf, ds, enforce_file_format=True)
        return buf.getvalue()

    # -- C-FIND --------------------------------------------------------------
    def _handle_find(self, event: Any) -> Iterator[tuple[int, Any]]:
        from pydicom.dataset import Dataset

        ident = event.identifier
        level = str(ident.get("QueryRetrieveLevel", "")).upper()
        if level not in ("PATIENT", "STUDY", "SERIES", "IMAGE"):
            yield 0xA900, None  # identifier does not match SOP class
            return
        matches = self._match(ident)
        key = {"PATIENT": lambda h: h.patient_id, "STUDY": lambda h: h.study_instance_uid,
               "SERIES": lambda h: h.series_instance_uid, "IMAGE": None}[level]
        groups: dict[Any, list[tuple[str, Held]]] = {}
        for sop, h in matches:
            groups.setdefault(key(h) if key else sop, []).append((sop, h))
        for members in groups.values():
            if event.is_cancelled:
                yield 0xFE00, None
                return
            sop, h = members[0]
            out = Dataset()
            out.QueryRetrieveLevel = level
            for kw, value in (("PatientID", h.patient_id), ("StudyInstanceUID", h.study_instance_uid),
                              ("SeriesInstanceUID", h.series_instance_uid)):
                if kw in ident or (kw == "StudyInstanceUID" and level != "PATIENT") or (
                        kw == "SeriesInstanceUID" and level in ("SERIES", "IMAGE")):
                    setattr(out, kw, value or "")
            if level == "IMAGE":
                out.SOPInstanceUID = sop
                if "SOPClassUID" in ident:
                    out.SOPClassUID = h.sop_class_uid
            if "NumberOfStudyRelatedInstances" in ident and level == "STUDY":
                out.NumberOfStudyRelatedInstances = len(members)
            if "NumberOfSeriesRelatedInstances" in ident and level == "SERIES":
                out.NumberOfSeriesRelatedInstances = len(members)
            yield 0xFF00, out
        yield 0x0000, None

    # -- C-GET ---------------------------------------------------------------
    def _handle_get(self, event: Any) -> Iterator[Any]:
        from pydicom import dcmread

        matches = self._match(event.identifier)
        yield len(matches)
        for _, h in matches:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, dcmread(h.path)

    # -- Storage Commitment ------------------------------------------------------
    def _handle_commit(self, event: Any) -> tuple[int, Any]:
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        req = event.action_information
        tuid = str(req.get("TransactionUID", ""))
        ok, failed = [], []
        for item in req.get("ReferencedSOPSequence", []):
            sop = str(item.ReferencedSOPInstanceUID)
            ref = Dataset()
            ref.ReferencedSOPClassUID = item.ReferencedSOPClassUID
            ref.ReferencedSOPInstanceUID = sop
            with self._lock:
                held = self.catalogue.get(sop)
            if held is None or not held.path.exists():
                ref.FailureReason = 0x0112  # no such object instance
                failed.append(ref)
            elif sop in (self.commit_fail or set()):
                ref.FailureReason = 0x0110  # processing failure
                failed.append(ref)
            else:
                ok.append(ref)
        info = Dataset()
        info.TransactionUID = tuid
        if ok:
            info.ReferencedSOPSequence = Sequence(ok)
        if failed:
            info.FailedSOPSequence = Sequence(failed)
        event_type = 2 if failed else 1
        threading.Thread(target=self._report, args=(event.assoc, info, event_type), daemon=True).start()
        return 0x0000, None

    def _report(self, assoc: Any, info: Any, event_type: int) -> None:
        """Send the N-EVENT-REPORT once the N-ACTION response has gone out."""
        time.sleep(0.2)
        if self.commit_reply is None and assoc.is_established:
            try:
                assoc.send_n_event_report(info, event_type, COMMIT, COMMIT_INSTANCE)
                return
            except Exception as e:  # fall back to a new association if configured
                log.warning("N-EVENT-REPORT on the same association failed: %s", e)
        if self.commit_reply is None:
            return
        t = Target.parse(self.commit_reply)
        reply = request(t, self.ae_title, 10, [(COMMIT, ())], ext_neg=[build_role(COMMIT, scp_role=True)])
        if reply.is_established:
            reply.send_n_event_report(info, event_type, COMMIT, COMMIT_INSTANCE)
            reply.release()

    # -- server ----------------------------------------------------------------
    def start(self, block: bool = False) -> int:
        """Start listening; return the port (useful with ``port=0``)."""
        self.storage.mkdir(parents=True, exist_ok=True)
        self._load()
        accept_nul_padded_ae_titles()
        ae = AE(ae_title=self.ae_title)
        for cx in AllStoragePresentationContexts:
            assert cx.abstract_syntax is not None
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
        ae.add_supported_context(VERIFICATION)
        for uid in (*FIND_MODELS, *GET_MODELS):
            ae.add_supported_context(uid)
        ae.add_supported_context(COMMIT, scu_role=True, scp_role=True)
        ae.maximum_associations = 16
        handlers = [(evt.EVT_C_STORE, self._handle_store), (evt.EVT_C_FIND, self._handle_find),
                    (evt.EVT_C_GET, self._handle_get), (evt.EVT_N_ACTION, self._handle_commit),
                    *nodelay_handlers()]
        if block:
            ae.start_server((self.host, self.port), block=True, evt_handlers=handlers)
            return self.port
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        self.port = self._server.server_address[1]
        return self.port

    def wait(self) -> None:
        """Block until :meth:`stop` (from another thread); a Ctrl-C reaches the caller as KeyboardInterrupt."""
        while self._server is not None:
            time.sleep(0.5)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


def start_receiver(storage: Path, *, port: int = 0, ae_title: str = "PACSCOPY_RX", host: str = "127.0.0.1",
                   commit_reply: str | None = None) -> Receiver:
    """The ``receive`` command's receiver, listening; one line (InputError) when the folder
    cannot be made or the address not bound."""
    try:
        storage.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {storage}: {e.strerror}") from None
    rx = Receiver(storage, port=port, ae_title=ae_title, host=host, commit_reply=commit_reply)
    try:
        rx.start()
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    return rx
