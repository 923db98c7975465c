"""The scan's per-attribute digests name what changed between two versions of a file (issue 14).

Real data: pydicom's bundled CT_small.dcm (258 top-level elements, private blocks of a GE
scanner in nine groups) and MR_small.dcm, edited with pydicom and parsed by the scan's parser.
"""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from pacscopy.attrdigest import changed, decode, label
from pacscopy.scan.parse import inspect_bytes


def digest(ds: pydicom.Dataset) -> dict[int, int]:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    ins = inspect_bytes(out.getvalue())
    assert ins.status == "ok" and ins.attr_digest is not None and ins.attr_keys is not None, ins
    return decode(ins.attr_digest, ins.attr_keys)


def ct() -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def test_digest_is_small_and_stable() -> None:
    raw = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    ins = inspect_bytes(raw)
    n = len(ins.attr_keys or b"") // 4
    assert len(ins.attr_digest or b"") == 8 + 2 * n
    assert n < 100 < len(pydicom.dcmread(get_testdata_file("CT_small.dcm")))  # private data folded per group
    assert inspect_bytes(raw).attr_digest == ins.attr_digest
    # the same dataset written again: nothing to name
    assert changed(digest(ct()), digest(ct())) == "the dataset's encoding (every attribute's value hashes as before)"


def test_names_public_private_and_pixel_changes() -> None:
    before = digest(ct())
    ds = ct()
    ds.SeriesDescription = "REVISED"
    ds.ReferringPhysicianName = "DR^CORRECTED"
    ds[0x00431010].value = 401            # a GE private element (Window value)
    del ds.SliceLocation
    assert changed(before, digest(ds)) == ("ReferringPhysicianName, SeriesDescription (added), SliceLocation "
                                           "(removed), (0043,xxxx) private data")
    ds = ct()
    px = bytearray(ds.PixelData)
    px[100] ^= 0x01
    ds.PixelData = bytes(px)
    assert changed(before, digest(ds)) == "PixelData"


def test_many_changes_are_cut_short() -> None:
    before = digest(pydicom.dcmread(get_testdata_file("MR_small.dcm")))
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    for kw in ("StudyDescription", "SeriesDescription", "InstitutionName", "ReferringPhysicianName", "PatientName",
               "PatientID", "AccessionNumber", "StudyID", "OperatorsName", "PerformingPhysicianName",
               "ProtocolName", "BodyPartExamined", "StationName", "Manufacturer"):
        setattr(ds, kw, "CHANGED")
    said = changed(before, digest(ds))
    assert said.count(",") == 12 and said.endswith("and 2 more"), said


@pytest.mark.parametrize("key, name", [
    (0x0008103E, "SeriesDescription"),
    (0x00090010, "(0009,0010) private creator"),
    (0x0009FFFF, "(0009,xxxx) private data"),
    (0x00081FFE, "(0008,1FFE)"),       # not in the dictionary: its number
])
def test_labels(key: int, name: str) -> None:
    assert label(key) == name


def test_damaged_digest_is_refused() -> None:
    ins = inspect_bytes(Path(get_testdata_file("MR_small.dcm")).read_bytes())
    with pytest.raises(ValueError):
        decode((ins.attr_digest or b"")[:-2], ins.attr_keys or b"")


def _digests_kept_by_a_scan(tmp_path: Path, env: dict[str, str]) -> int:
    """Scan a copy of pydicom's CT_small.dcm in a process of its own with ``env``; the file is
    scanned sound, and the number of digests the index kept is returned."""
    import subprocess
    import sys

    import duckdb

    root = tmp_path / "src"
    root.mkdir()
    (root / "ct.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    idx = tmp_path / "scan.duckdb"
    r = subprocess.run([sys.executable, "-m", "pacscopy", "scan", str(root), "--index", str(idx), "-q"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    con = duckdb.connect(str(idx), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM files WHERE status = 'ok'").fetchone() == (1,)
        ((n,),) = con.execute("SELECT count(*) FROM file_digests").fetchall()
    finally:
        con.close()
    return int(n)


def test_digests_can_be_switched_off(tmp_path: Path) -> None:
    """PACSCOPY_ATTR_DIGESTS=off: the scan keeps no digests (and pays nothing for them); the
    reasons then fall back to the attributes the index keeps."""
    import os

    assert _digests_kept_by_a_scan(tmp_path, {**os.environ, "PACSCOPY_ATTR_DIGESTS": "off"}) == 0


def test_digests_are_off_by_default(tmp_path: Path) -> None:
    """Without PACSCOPY_ATTR_DIGESTS a scan keeps no digests: a first scan of an archive does not
    pay for them (BENCHMARKS.md, "Attribute digests"); the tests turn them on in conftest."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PACSCOPY_ATTR_DIGESTS"}
    assert _digests_kept_by_a_scan(tmp_path, env) == 0


def test_digests_are_kept_when_switched_on(tmp_path: Path) -> None:
    """PACSCOPY_ATTR_DIGESTS=on (as conftest sets it): the scan keeps the file's digest, so the two
    tests above fail if the scan never keeps any."""
    import os

    assert _digests_kept_by_a_scan(tmp_path, {**os.environ, "PACSCOPY_ATTR_DIGESTS": "on"}) == 1
