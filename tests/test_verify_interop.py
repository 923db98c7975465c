"""verify and reconcile against peers that differ: retired and private classes by C-MOVE, many contexts,
private elements returned as UN, C-FIND quirks, a transcode, aborted associations, NUL-padded AE
titles, targets without Storage Commitment, and the order of the evidence in reconcile."""

from __future__ import annotations

import json
import random
import socket
import struct
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from pacscopy.testing.synth import PRIVATE_SOP_CLASS, _UIDs, make_dataset, part10_bytes

from .conftest import rows
from .peers import dcmqrscp, free_port, orthanc, qrscp, tiny_pacs
from .peers_qr import faulty_qr

RETIRED_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.6"  # Ultrasound Image Storage (Retired)
CT = "1.2.840.10008.5.1.4.1.1.2"


def _make(root: Path, specs: list[tuple[str, str]], seed: int = 7, private: bool = False,
          ybr_rle: bool = False) -> dict[str, tuple[str, str]]:
    """One small instance per (SOP class, transfer syntax); return {SOPInstanceUID: spec}."""
    root.mkdir(parents=True, exist_ok=True)
    uid = _UIDs(random.Random(seed))
    rng = np.random.default_rng(seed)
    study, series = uid(), uid()
    out = {}
    for i, (cls, ts) in enumerate(specs):
        ds = make_dataset(uid, rng, patient_id="PV1", patient_name="VER^IFY", birth_date="19700101",
                          study_uid=study, series_uid=series, accession="AV1", study_date="20210101",
                          instance_number=i + 1, rows=8, columns=8, sop_class=cls)
        if private:
            block = ds.private_block(0x0029, "PACSCOPY TEST", create=True)
            block.add_new(0x03, "DS", ["1.5", "2.25"])
            block.add_new(0x04, "UL", 7)
            item = Dataset()
            item.CodeValue = "A1"
            item.CodeMeaning = "an item"
            block.add_new(0x05, "SQ", Sequence([item]))
        if ybr_rle:
            ds.SamplesPerPixel = 3
            ds.PhotometricInterpretation = "YBR_FULL"
            ds.PlanarConfiguration = 0
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
            ds.PixelData = rng.integers(16, 240, size=8 * 8 * 3, dtype=np.uint8).tobytes()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.compress(RLELossless)
        (root / f"IM{i:03d}.dcm").write_bytes(part10_bytes(ds, ts))
        out[str(ds.SOPInstanceUID)] = (cls, ts)
    return out


def _index(tmp_path: Path, cli, root: Path) -> Path:
    idx = tmp_path / "v.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    return idx


def _orthanc_delete(peer, sop: str) -> None:
    req = urllib.request.Request(f"http://127.0.0.1:{peer.http}/tools/lookup", data=sop.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        (hit,) = json.loads(r.read())
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{peer.http}/instances/{hit['ID']}",
                                                  method="DELETE"), timeout=30)


# -- 1: C-MOVE takes back retired and private classes --------------------------------------

def test_move_takes_back_private_and_retired_classes(tmp_path, cli) -> None:
    made = _make(tmp_path / "src", [(CT, ExplicitVRLittleEndian), (PRIVATE_SOP_CLASS, ExplicitVRLittleEndian),
                                    (RETIRED_SOP_CLASS, ExplicitVRLittleEndian), (CT, ExplicitVRLittleEndian)])
    idx = _index(tmp_path, cli, tmp_path / "src")
    cb = free_port()
    extra = {"DicomModalities": {"pacscopy": ["PACSCOPY", "127.0.0.1", cb]}, "UnknownSopClassAccepted": True}
    with orthanc(tmp_path, extra=extra) as peer:
        r = cli("send", "--target", peer.target, "--index", idx, "-q")
        assert r.code == 0 and "stored:    4" in r.out, r.out
        r = cli("verify", "--target", peer.target, "--index", idx, "--mode", "retrieve", "--move", "--port", cb,
                "--bind", "127.0.0.1", "-q")
        assert r.code == 0, r.out + r.err + peer.logtext()[-3000:]
        assert "verified:          4" in r.out
    got = dict(rows(idx, "SELECT sop_instance_uid, outcome FROM verification_latest WHERE mode = 'retrieve'"))
    assert got == {sop: "verified" for sop in made}


# -- 2: more than 128 presentation contexts ---------------------------------------------------

def test_retrieve_chunks_by_presentation_contexts(tmp_path, cli) -> None:
    from pynetdicom import AllStoragePresentationContexts

    from pacscopy.receive import Receiver
    from pacscopy.verify.verify import MAX_CONTEXTS, retrieve_chunks

    classes = [str(cx.abstract_syntax) for cx in AllStoragePresentationContexts][:34]
    syntaxes = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]
    chunks = retrieve_chunks({c: set(syntaxes) for c in classes}, move=False)
    assert len(chunks) == 2 and sorted(c for cl, _ in chunks for c in cl) == sorted(classes)
    assert all(len(cx) + 1 <= MAX_CONTEXTS for _, cx in chunks)  # + Verification
    made = _make(tmp_path / "src", [(c, ts) for c in classes for ts in syntaxes])
    idx = _index(tmp_path, cli, tmp_path / "src")
    rx = Receiver(tmp_path / "rx")
    port = rx.start()
    try:
        t = f"{rx.ae_title}@127.0.0.1:{port}"
        r = cli("send", "--target", t, "--index", idx, "-q")
        assert r.code == 0 and f"stored:    {len(made)}" in r.out, r.out
        r = cli("verify", "--target", t, "--index", idx, "--mode", "retrieve", "-q")
        assert r.code == 0, r.out + r.err
        assert f"verified:          {len(made)}" in r.out
    finally:
        rx.stop()


# -- 3 and 11: dcmqrscp, private elements, no Storage Commitment ----------------------------------

def test_dcmqrscp_private_elements_equal_and_no_commitment(tmp_path, cli) -> None:
    from pacscopy.verify.verify import _get_syntaxes

    assert _get_syntaxes({ExplicitVRLittleEndian})[0] == ExplicitVRLittleEndian
    assert _get_syntaxes({ExplicitVRBigEndian})[:2] == [ExplicitVRBigEndian, ExplicitVRLittleEndian]
    made = _make(tmp_path / "src", [(CT, ExplicitVRLittleEndian)] * 3, private=True)
    idx = _index(tmp_path, cli, tmp_path / "src")
    with dcmqrscp(tmp_path) as peer:
        r = cli("send", "--target", peer.target, "--index", idx, "-q", "--associations", "1")
        assert r.code == 0, r.out
        r = cli("verify", "--target", peer.target, "--index", idx, "--mode", "retrieve", "-q")
        assert r.code == 0, r.out + peer.logtext()[-2000:]
        assert "verified:          3" in r.out
        r = cli("verify", "--target", peer.target, "--index", idx, "--mode", "commit", "--port", free_port(), "-q")
        assert r.code == 2
        assert ("the target accepted the association but refused the Storage Commitment context: it does not "
                "offer Storage Commitment (N-ACTION)") in r.err.replace(peer.target, "the target")
        assert len(r.err.strip().splitlines()) == 1
    assert rows(idx, "SELECT count(*) FROM verifications WHERE mode = 'commit'") == [(0,)]
    assert len(made) == 3


def test_private_element_read_as_un_compares_by_bytes() -> None:
    """The same private elements, once explicit and once as an implicit VR target returns them."""
    from io import BytesIO

    import pydicom

    from pacscopy.verify.verify import _same_private

    made = Dataset()
    block = made.private_block(0x0029, "PACSCOPY TEST", create=True)
    block.add_new(0x03, "DS", ["1.5", "2.25"])
    block.add_new(0x04, "UL", 7)
    item = Dataset()
    item.CodeValue = "A1"
    block.add_new(0x05, "SQ", Sequence([item]))
    made.file_meta = FileMetaDataset()
    made.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    buf = BytesIO()
    made.save_as(buf, implicit_vr=True, little_endian=True)
    back = pydicom.dcmread(BytesIO(buf.getvalue()), force=True)
    assert back[0x00291004].VR == "UN" and back[0x00291003].VR == "UN"
    for key in ("(0029,1003)", "(0029,1004)", "(0029,1005)"):
        assert _same_private(key, made, back), key
    other = Dataset()
    b2 = other.private_block(0x0029, "PACSCOPY TEST", create=True)
    b2.add_new(0x04, "UL", 8)
    assert not _same_private("(0029,1004)", other, back)


# -- 4: C-FIND quirks -------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["findrepeat", "finddrop"])
def test_find_requeries_unlisted_instances(planned, tmp_path, cli, mode) -> None:
    with faulty_qr(tmp_path, mode) as peer:
        assert cli("send", "--target", peer.target, "--index", planned, "-q").code == 0
        r = cli("verify", "--target", peer.target, "--index", planned, "--mode", "find", "-q")
        assert r.code == 0, r.out + peer.logtext()[-2000:]
        assert "verified:          15" in r.out
        assert "SOPInstanceUID" in peer.logtext() or "C-FIND 1." in peer.logtext()
    details = [d for (d,) in rows(planned, "SELECT detail FROM verification_latest WHERE mode = 'find'")]
    assert any("asked for by its SOPInstanceUID" in d for d in details)


# -- 9: a C-MOVE on an aborted association -----------------------------------------------------

def test_move_on_aborted_association_costs_no_timeout(planned, tmp_path, cli) -> None:
    with faulty_qr(tmp_path, "moveabort") as peer:
        assert cli("send", "--target", peer.target, "--index", planned, "-q").code == 0
        t0 = time.monotonic()
        r = cli("verify", "--target", peer.target, "--index", planned, "--mode", "retrieve", "--move",
                "--port", free_port(), "--timeout", "20", "-q")
        took = time.monotonic() - t0
        assert r.code == 1, r.out + r.err
        assert "failed:            15" in r.out
    assert took < 20, f"{took:.1f} s: a DIMSE timeout was waited out"
    details = {d for (d,) in rows(planned, "SELECT detail FROM verification_latest WHERE mode = 'retrieve'")}
    assert details == {"no answer to C-MOVE (the target aborted the association)"}


# -- 10: NUL-padded AE titles --------------------------------------------------------------------

def test_listener_accepts_nul_padded_ae_titles(tmp_path) -> None:
    from pacscopy.dicom.storelink import associate_rq
    from pacscopy.receive import Receiver

    rx = Receiver(tmp_path / "rx")
    port = rx.start()
    try:
        pdu = bytearray(associate_rq("PACSCOPY_RX", "TINYPACS", [(1, "1.2.840.10008.1.1", ImplicitVRLittleEndian)]))
        pdu[10:26] = b"PACSCOPY_RX".ljust(16, b"\x00")
        pdu[26:42] = b"TINYPACS".ljust(16, b"\x00")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(bytes(pdu))
            head = s.recv(6)
            assert head[0] == 0x02, f"PDU type 0x{head[0]:02X} instead of A-ASSOCIATE-AC"
            (length,) = struct.unpack(">I", head[2:6])
            body = b""
            while len(body) < length:
                body += s.recv(length - len(body))
            s.sendall(bytes([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]))  # A-RELEASE-RQ
            assert s.recv(1) == b"\x06"
    finally:
        rx.stop()


# -- 12: the listener's address ----------------------------------------------------------------

def test_listener_binds_the_address_that_reaches_the_target(planned, tmp_path, cli) -> None:
    from pacscopy.dicom.peer import Target
    from pacscopy.verify.verify import local_address

    assert local_address(Target("X", "127.0.0.1", 104)) == "127.0.0.1"
    from pacscopy.receive import Receiver

    rx = Receiver(tmp_path / "rx")
    port = rx.start()
    try:
        t = f"{rx.ae_title}@127.0.0.1:{port}"
        assert cli("send", "--target", t, "--index", planned, "-q").code == 0
        r = cli("verify", "--target", t, "--index", planned, "--mode", "commit", "--port", free_port(),
                "--bind", "192.0.2.1", "-q")
        assert r.code == 2 and "cannot listen on 192.0.2.1:" in r.err and "--bind" in r.err
        assert rows(planned, "SELECT count(*) FROM verifications") == [(0,)]
    finally:
        rx.stop()


# -- 8: verify after a transcode -----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ybr_rle", "big_endian_deflated"])
def test_transcoded_is_verified_against_what_was_sent(tmp_path, cli, kind) -> None:
    if kind == "ybr_rle":
        made = _make(tmp_path / "src", [(CT, RLELossless)] * 2, ybr_rle=True)
    else:
        made = _make(tmp_path / "src", [(CT, ExplicitVRBigEndian), (CT, DeflatedExplicitVRLittleEndian)])
    idx = _index(tmp_path, cli, tmp_path / "src")
    with orthanc(tmp_path, accepted_syntaxes=[ImplicitVRLittleEndian, ExplicitVRLittleEndian]) as peer:
        assert cli("probe", "--target", peer.target, "--index", idx).code == 0
        r = cli("send", "--target", peer.target, "--index", idx, "-q", "--transcode")
        assert r.code == 0 and "stored:    2" in r.out, r.out
        r = cli("verify", "--target", peer.target, "--index", idx, "--mode", "retrieve", "-q")
        assert r.code == 0, r.out
        assert "verified:          2" in r.out
    got = rows(idx, "SELECT detail FROM verification_latest WHERE mode = 'retrieve'")
    assert all("as sent: transcoded" in d for (d,) in got) and len(made) == 2


# -- 1 and 5: the cause of a failed C-MOVE, and the order of the evidence -------------------------

def test_evidence_order_disputed_and_forget(planned, tmp_path, cli) -> None:
    idx = planned
    with orthanc(tmp_path) as peer:  # pacscopy is not among its DicomModalities: C-MOVE to it fails
        t = peer.target
        assert cli("send", "--target", t, "--index", idx, "-q").code == 0
        r = cli("verify", "--target", t, "--index", idx, "--mode", "retrieve", "-q")
        assert r.code == 0 and "verified:          15" in r.out
        r = cli("verify", "--target", t, "--index", idx, "--mode", "retrieve", "--move", "--port", free_port(), "-q")
        assert r.code == 1 and "failed:            15" in r.out
        (detail,) = rows(idx, "SELECT DISTINCT detail FROM verification_latest WHERE mode = 'retrieve'")[0]
        assert detail.startswith("C-MOVE failed with status 0x") and "(" in detail, detail
        # a failed --move does not overwrite the earlier C-GET
        data = json.loads(cli("reconcile", "--target", t, "--index", idx, "--format", "json").out)
        assert data["complete"] is True and data["totals"] == {"verified": 15}
        # a later, weaker miss disputes the retrieve; it does not make the instance missing
        (gone,) = rows(idx, "SELECT min(sop_instance_uid) FROM stored")[0]
        _orthanc_delete(peer, gone)
        r = cli("verify", "--target", t, "--index", idx, "--mode", "find", "-q")
        assert r.code == 1 and gone in r.out
        r = cli("reconcile", "--target", t, "--index", idx, "--format", "json")
        data = json.loads(r.out)
        assert r.code == 1 and data["totals"] == {"verified": 14, "disputed": 1}
        (p,) = data["problems"]
        assert p["sop_instance_uid"] == gone and p["final_state"] == "disputed"
        assert p["reason"].startswith("retrieve: verified") and "later find: missing_on_target" in p["reason"]
        # retire the retrieve results: the find miss is the evidence now
        before = rows(idx, "SELECT count(*) FROM verifications")
        r = cli("verify", "--target", t, "--index", idx, "--forget", "retrieve")
        assert r.code == 0 and "retired 30 retrieve results" in r.out
        assert rows(idx, "SELECT count(*) FROM verifications") == before
        assert rows(idx, "SELECT target, mode, rows_retired FROM verification_forgets") == [(t, "retrieve", 30)]
        data = json.loads(cli("reconcile", "--target", t, "--index", idx, "--format", "json", "--no-query").out)
        assert data["totals"] == {"verified": 14, "missing_on_target": 1}
        r = cli("reconcile", "--target", t, "--index", idx, "--no-query")
        assert "missing_on_target" in r.out and "disputed" not in r.out


def test_a_response_taken_by_the_reactor_goes_back_on_the_queue(tmp_path) -> None:
    """pynetdicom's reactor can take a C-FIND response meant for send_c_find (a race in its pause);
    pacscopy's associations put it back at the head of the queue instead of dropping it."""
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom.dimse_primitives import C_FIND

    from pacscopy.dicom.peer import Target
    from pacscopy.receive import Receiver
    from pacscopy.dicom.scu import FIND
    from pacscopy.dicom.scu import associate as _associate

    rx = Receiver(tmp_path / "rx")
    port = rx.start()
    try:
        assoc = _associate(Target(rx.ae_title, "127.0.0.1", port), "PACSCOPY", 10,
                           [(FIND, [ExplicitVRLittleEndian])], "C-FIND")
        try:
            rsp = C_FIND()
            rsp.MessageIDBeingRespondedTo = 1
            rsp.AffectedSOPClassUID = FIND
            rsp.Status = 0xFF00
            cid = assoc.accepted_contexts[0].context_id
            assoc._reactor_checkpoint.clear()  # hold the reactor, as send_c_find does
            while not assoc._is_paused:
                time.sleep(0.001)
            assoc._serve_request(rsp, cid)  # what the reactor does with a message it took
            assert assoc.dimse.msg_queue.queue[0] == (cid, rsp)
            assert assoc.dimse.get_msg(block=False) == (cid, rsp)
            assoc._reactor_checkpoint.set()
        finally:
            assoc.release()
    finally:
        rx.stop()


# -- 2, 1: pynetdicom's qrscp app, where C-GET crashed with 34 classes x 4 syntaxes -------------

def test_qrscp_retrieve_many_contexts_by_get_and_move(tmp_path, cli) -> None:
    from pynetdicom import AllStoragePresentationContexts

    classes = [str(cx.abstract_syntax) for cx in AllStoragePresentationContexts][:34]
    syntaxes = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]
    made = _make(tmp_path / "src", [(c, ts) for c in classes for ts in syntaxes])
    idx = _index(tmp_path, cli, tmp_path / "src")
    cb = free_port()
    with qrscp(tmp_path, move_destinations={"PACSCOPY": cb}) as peer:
        r = cli("send", "--target", peer.target, "--index", idx, "-q")
        assert r.code == 0 and f"stored:    {len(made)}" in r.out, r.out + r.err
        r = cli("verify", "--target", peer.target, "--index", idx, "--mode", "retrieve", "-q")
        assert r.code == 0, r.out + r.err + peer.logtext()[-2000:]
        assert f"verified:          {len(made)}" in r.out
        r = cli("verify", "--target", peer.target, "--index", idx, "--mode", "retrieve", "--move", "--port", cb, "-q")
        assert r.code == 0, r.out + r.err + peer.logtext()[-2000:]
        assert f"verified:          {len(made)}" in r.out
        assert peer.alive()


# -- 4, 10: tiny-pacs (pynetdicom2) ------------------------------------------------------------

def test_tiny_pacs_find_is_verified(planned, tmp_path, cli) -> None:
    """tiny-pacs names one SOPInstanceUID in every IMAGE-level match of a series query."""
    with tiny_pacs(tmp_path) as peer:
        assert cli("probe", "--target", peer.target, "--index", planned).code == 0  # it refuses big endian
        r = cli("send", "--target", peer.target, "--index", planned, "-q", "--associations", "1")
        assert r.code == 0, r.out + r.err
        (n,) = rows(planned, "SELECT count(*) FROM stored")[0]
        assert n >= 10
        r = cli("verify", "--target", peer.target, "--index", planned, "--mode", "find", "-q")
        assert r.code == 0, r.out + r.err + peer.logtext()[-3000:]
        assert f"verified:          {n}" in r.out


def test_tiny_pacs_move_with_nul_padded_ae_titles(planned, tmp_path, cli) -> None:
    """pynetdicom2 pads the AE titles of its C-MOVE sub-association with NULs: pacscopy's SCP takes them."""
    cb = free_port()
    with tiny_pacs(tmp_path, devices={"PACSCOPY": cb}) as peer:
        assert cli("probe", "--target", peer.target, "--index", planned).code == 0
        assert cli("send", "--target", peer.target, "--index", planned, "-q", "--associations", "1").code == 0
        (n,) = rows(planned, "SELECT count(*) FROM stored")[0]
        r = cli("verify", "--target", peer.target, "--index", planned, "--mode", "retrieve", "--move", "--port", cb,
                "-q")
        assert r.code == 0, r.out + r.err + peer.logtext()[-3000:]
        assert f"verified:          {n}" in r.out
