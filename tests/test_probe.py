"""probe -> blocked -> transcode, against an Orthanc restricted to uncompressed syntaxes."""

from __future__ import annotations


import numpy as np
import pydicom
import pytest
from pydicom.uid import RLELossless

from pacscopy.testing.synth import PRIVATE_SOP_CLASS, _UIDs, make_dataset, part10_bytes

from .conftest import rows
from .peers import orthanc, orthanc_get, orthanc_json


@pytest.fixture
def mixed(tmp_path, cli):
    import random

    root = tmp_path / "mixed"
    root.mkdir()
    uid = _UIDs(random.Random(5))
    rng = np.random.default_rng(5)
    study, series = uid(), uid()
    kinds = {}
    for i in range(5):
        ds = make_dataset(uid, rng, patient_id="PX1", patient_name="MIX^ED", birth_date="19800101",
                          study_uid=study, series_uid=series, accession="AX1", study_date="20200101",
                          instance_number=i + 1)
        if i < 2:
            from pydicom.dataset import FileMetaDataset

            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
            ds.compress(RLELossless)  # pydicom's own RLE encoder
            kind = "rle"
        elif i == 2:
            ds.SOPClassUID = PRIVATE_SOP_CLASS
            kind = "private"
        else:
            kind = "plain"
        (root / f"IM{i}.dcm").write_bytes(part10_bytes(ds, ds.file_meta.TransferSyntaxUID if kind == "rle"
                                                       else "1.2.840.10008.1.2.1"))
        kinds[ds.SOPInstanceUID] = kind
    idx = tmp_path / "m.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    return idx, kinds, root


def test_probe_blocks_what_the_target_refuses_and_transcode_sends_it(mixed, tmp_path, cli) -> None:
    idx, kinds, root = mixed
    assert {d for (d,) in rows(idx, "SELECT DISTINCT disposition FROM plan")} == {"send"}
    with orthanc(tmp_path, accepted_syntaxes=["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]) as peer:
        r = cli("probe", "--target", peer.target, "--index", idx)
        assert r.code == 0, r.err
        assert "C-ECHO 0x0000" in r.out
        caps = dict(((c, t), a) for c, t, a in rows(idx, "SELECT sop_class_uid, transfer_syntax_uid, accepted FROM target_capabilities"))
        assert caps[("1.2.840.10008.5.1.4.1.1.2", RLELossless)] is False
        assert caps[("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")] is True
        assert caps[(PRIVATE_SOP_CLASS, "1.2.840.10008.1.2.1")] is False
        plan = {s: (d, w, t) for s, d, w, t in rows(idx, "SELECT sop_instance_uid, disposition, why, transcode_to FROM plan")}
        for sop, kind in kinds.items():
            d, why, tc = plan[sop]
            if kind == "plain":
                assert d == "send"
            elif kind == "rle":
                assert d == "blocked" and "refuses" in why and tc == "1.2.840.10008.1.2.1" and "--transcode" in why
            else:
                assert d == "blocked" and tc is None and PRIVATE_SOP_CLASS in why
        # without --transcode only the plain ones go
        r = cli("send", "--target", peer.target, "--index", idx, "-q")
        assert r.code == 0, r.out
        assert len(orthanc_json(peer, "/instances")) == 2
        # with it, the RLE ones go decompressed; the private class stays blocked
        r = cli("send", "--target", peer.target, "--index", idx, "-q", "--transcode")
        assert r.code == 0, r.out
        ids = orthanc_json(peer, "/instances")
        assert len(ids) == 4
        got = {}
        for oid in ids:
            ds = pydicom.dcmread(__import__("io").BytesIO(orthanc_get(peer, f"/instances/{oid}/file")))
            got[ds.SOPInstanceUID] = ds
    for sop, kind in kinds.items():
        if kind == "rle":
            ds = got[sop]
            assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
            src = pydicom.dcmread(next(p for p in root.glob("*.dcm") if pydicom.dcmread(p).SOPInstanceUID == sop))
            assert np.array_equal(ds.pixel_array, src.pixel_array)
    rewritten = {r for (r,) in rows(idx, "SELECT rewritten FROM transfers WHERE outcome = 'stored' AND rewritten IS NOT NULL")}
    assert rewritten == {f"transcoded:{RLELossless}->1.2.840.10008.1.2.1"}
    assert "private" not in {kinds[s] for s in got}


def test_probe_unreachable_target(tmp_path, cli, mixed) -> None:
    from .peers import free_port

    idx, _, _ = mixed
    r = cli("probe", "--target", f"NOBODY@127.0.0.1:{free_port()}", "--index", idx, "--timeout", "2")
    assert r.code == 2 and "did not accept an association" in r.err
    assert rows(idx, "SELECT count(*) FROM target_capabilities") == [(0,)]
