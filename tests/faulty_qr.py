"""A query/retrieve SCP that misbehaves in one chosen way, for verify's fault tests. Runs as its own process.

It stores what it receives (STORAGE/<SOPInstanceUID>.dcm) and answers Study Root C-FIND at IMAGE level;
what goes wrong depends on the mode:
  findrepeat  every IMAGE-level match names the same SOPInstanceUID, the first one (as tiny-pacs does)
  finddrop    a query without a SOPInstanceUID key loses its last match (what pynetdicom's reactor race
              does to a C-FIND response on the client side)
  moveabort   C-MOVE: the association is aborted instead of an answer
Every request is logged.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

mode, port, storage, ae_title = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]


def handle_store(event):
    sop = str(event.request.AffectedSOPInstanceUID)
    (storage / f"{sop}.dcm").write_bytes(event.encoded_dataset(include_meta=True))
    return 0x0000


def _matches(ident):
    out = []
    for p in sorted(storage.glob("*.dcm")):
        ds = dcmread(p, stop_before_pixels=True)
        ok = all(not ident.get(k) or str(ident.get(k)) == str(ds.get(k))
                 for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
        if ok:
            out.append(ds)
    return out


def handle_find(event):
    ident = event.identifier
    found = _matches(ident)
    print(f"C-FIND {ident.get('SOPInstanceUID') or '*'}: {len(found)} matches", flush=True)
    if mode == "finddrop" and not ident.get("SOPInstanceUID") and found:
        found = found[:-1]
    for ds in found:
        rsp = Dataset()
        rsp.QueryRetrieveLevel = "IMAGE"
        rsp.StudyInstanceUID = ds.StudyInstanceUID
        rsp.SeriesInstanceUID = ds.SeriesInstanceUID
        rsp.SOPInstanceUID = found[0].SOPInstanceUID if mode == "findrepeat" else ds.SOPInstanceUID
        yield 0xFF00, rsp
    yield 0x0000, None


def handle_move(event):
    print(f"C-MOVE {event.identifier.get('SOPInstanceUID')}", flush=True)
    if mode == "moveabort":
        event.assoc.abort()
        return
    yield None, None  # never reached in the modes above


ae = AE(ae_title=ae_title)
for cx in AllStoragePresentationContexts:
    ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
ae.add_supported_context(Verification)
ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
print(f"faulty Q/R SCP {mode} on {port}", flush=True)
ae.start_server(("127.0.0.1", port), block=True, evt_handlers=[
    (evt.EVT_C_STORE, handle_store), (evt.EVT_C_FIND, handle_find), (evt.EVT_C_MOVE, handle_move)])
