"""send --transcode: big endian and deflated objects re-encoded, compressed ones only with a decoder installed."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from pacscopy.dicom.codec import encode_dataset, read_dataset
from pacscopy.send.transcode import EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, decoders, rewrite_syntax

from .conftest import rows
from .peers import orthanc, orthanc_get, orthanc_json

LITTLE = [IMPLICIT_LE, EXPLICIT_LE]
# pydicom's bundled files: big endian, deflated, and three compressed families
SAMPLES = {
    "be": "MR_small_bigendian.dcm",
    "deflated": "image_dfl.dcm",  # replaced by a synthetic one in the corpus: this one has no PatientID (held)
    "jpeg": "SC_rgb_jpeg_dcmtk.dcm",
    "j2k": "JPEG2000.dcm",
    "rle": "SC_rgb_rle.dcm",
}


def _deflated_file(path: Path) -> None:
    import random

    from pacscopy.testing.synth import _UIDs, make_dataset, part10_bytes

    uid = _UIDs(random.Random(7))
    ds = make_dataset(uid, np.random.default_rng(7), patient_id="PDFL", patient_name="DEFLATED^TEST",
                      birth_date="19700101", study_uid=uid(), series_uid=uid(), accession="ADFL",
                      study_date="20200101")
    path.write_bytes(part10_bytes(ds, "1.2.840.10008.1.2.1.99"))


def _same_values(a: pydicom.Dataset, b: pydicom.Dataset, big_endian: bool) -> None:
    """Every element of ``a`` has the same value in ``b`` (binary values compared as the numbers they hold)."""
    swap = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
    for ea in a:
        if ea.tag.element == 0:  # group lengths count the old encoding's bytes: not written (and retired)
            continue
        eb = b[ea.tag]
        assert ea.VR == eb.VR, ea.tag
        if ea.VR == "SQ":
            assert len(ea.value) == len(eb.value)
            for ia, ib in zip(ea.value, eb.value):
                _same_values(ia, ib, big_endian)
        elif ea.VR in swap and ea.value:
            n = swap[ea.VR]
            va = np.frombuffer(ea.value, dtype=f"{'>' if big_endian else '<'}u{n}")
            assert np.array_equal(va, np.frombuffer(eb.value, dtype=f"<u{n}")), ea.tag
        else:
            assert ea.value == eb.value, ea.tag
    assert {e.tag for e in a if e.tag.element} == {e.tag for e in b if e.tag.element}, "elements added or lost"


@pytest.mark.parametrize("name,big", [("MR_small_bigendian.dcm", True), ("SC_rgb_small_odd_big_endian.dcm", True),
                                      ("ExplVR_BigEnd.dcm", True), ("image_dfl.dcm", False)])
def test_reencoding_keeps_every_value(name, big) -> None:
    """16-bit OW, 8-bit RGB in OW (odd size), 8-bit OB, deflated: every value survives, pixels too."""
    path = get_testdata_file(name)
    original = pydicom.dcmread(path)
    pixels = original.pixel_array.copy()
    ds = pydicom.dcmread(path)
    rewrite_syntax(ds, str(ds.file_meta.TransferSyntaxUID), EXPLICIT_LE)
    data = encode_dataset(ds, EXPLICIT_LE)
    back = read_dataset(data, 0, EXPLICIT_LE)
    _same_values(original, back, big)
    assert np.array_equal(back.pixel_array, pixels)


@pytest.fixture
def corpus(tmp_path, cli):
    root = tmp_path / "src"
    root.mkdir()
    for kind, name in SAMPLES.items():
        shutil.copy(get_testdata_file(name), root / f"{kind}.dcm")
    _deflated_file(root / "deflated.dcm")
    idx = tmp_path / "t.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    sops = {pydicom.dcmread(p).SOPInstanceUID: p.stem for p in root.glob("*.dcm")}
    return idx, sops, root


def test_big_endian_and_deflated_go_to_a_little_endian_only_orthanc(corpus, tmp_path, cli) -> None:
    idx, sops, root = corpus
    assert all(decoders()[ts] is None for ts in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90")), \
        "the test extra installs the decoders (pacscopy[decoders])"
    with orthanc(tmp_path, accepted_syntaxes=LITTLE, extra={"UnknownSopClassAccepted": False}) as peer:
        r = cli("probe", "--target", peer.target, "--index", idx)
        assert r.code == 0, r.err
        assert "blocked: 5 sendable with send --transcode" in r.out, r.out
        plan = {sops[s]: (d, why, tc) for s, d, why, tc in
                rows(idx, "SELECT sop_instance_uid, disposition, why, transcode_to FROM plan")}
        for kind in ("be", "deflated"):
            d, why, tc = plan[kind]
            assert d == "blocked" and tc in LITTLE and "re-encoded in" in why, (kind, why)
        for kind in ("jpeg", "j2k", "rle"):  # decoders installed: promised
            d, why, tc = plan[kind]
            assert d == "blocked" and tc in LITTLE and "decompressed to" in why, (kind, why)
        r = cli("send", "--target", peer.target, "--index", idx, "-q", "--transcode")
        assert r.code == 0, r.out + r.err
        got = {}
        for oid in orthanc_json(peer, "/instances"):
            ds = pydicom.dcmread(io.BytesIO(orthanc_get(peer, f"/instances/{oid}/file")))
            got[sops[ds.SOPInstanceUID]] = ds
        assert set(got) == set(SAMPLES)
        for kind, ds in got.items():
            assert ds.file_meta.TransferSyntaxUID in LITTLE, kind
            src = pydicom.dcmread(root / f"{kind}.dcm")
            assert np.array_equal(ds.pixel_array, src.pixel_array), kind
        _same_values(pydicom.dcmread(root / "be.dcm"), got["be"], True)
        _same_values(pydicom.dcmread(root / "deflated.dcm"), got["deflated"], False)
        # and the retrieve-back compares equal to the source
        r = cli("verify", "--target", peer.target, "--index", idx, "--mode", "retrieve")
        verdict = {sops[s]: (o, d) for s, o, d in rows(
            idx, "SELECT sop_instance_uid, outcome, detail FROM verifications WHERE mode = 'retrieve'")}
        for kind in ("be", "deflated"):
            assert verdict[kind][0] == "verified", (kind, verdict[kind], r.out)
    rewritten = dict(rows(idx, "SELECT f.transfer_syntax_uid, t.rewritten FROM transfers t JOIN files f USING (path) "
                               "WHERE t.outcome = 'stored'"))
    assert rewritten[EXPLICIT_BE].startswith(f"transcoded:{EXPLICIT_BE}->")


def test_without_decoders_the_plan_promises_only_what_pydicom_can_do(corpus, tmp_path) -> None:
    """pylibjpeg made unimportable in a fresh interpreter: JPEG and JPEG 2000 are no longer promised, RLE
    (pydicom's own decoder) and the re-encodings still are, and why names the package that adds the rest."""
    idx, sops, _ = corpus
    with orthanc(tmp_path, accepted_syntaxes=LITTLE) as peer:
        code = ("import sys; sys.modules.update(dict.fromkeys(['pylibjpeg', 'libjpeg', 'openjpeg', 'rle'], None)); "
                "from pacscopy.cli import main; main(sys.argv[1:])")
        r = subprocess.run([sys.executable, "-c", code, "probe", "--target", peer.target, "--index", str(idx)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    assert "blocked: 3 sendable with send --transcode" in r.stdout, r.stdout
    assert "blocked: 1 not transcodable: no decoder for JPEG Baseline (Process 1) installed (pip install " \
           "'pacscopy[decoders]'" in r.stdout, r.stdout
    plan = {sops[s]: (d, why, tc) for s, d, why, tc in
            rows(idx, "SELECT sop_instance_uid, disposition, why, transcode_to FROM plan")}
    for kind in ("jpeg", "j2k"):
        d, why, tc = plan[kind]
        assert d == "blocked" and tc is None, (kind, why)
        assert "cannot rewrite it here" in why and "pacscopy[decoders]" in why and "--transcode with" not in why
    assert "JPEG Baseline" in plan["jpeg"][1] and "JPEG 2000" in plan["j2k"][1]
    for kind in ("be", "deflated", "rle"):
        assert plan[kind][2] in LITTLE, (kind, plan[kind])
