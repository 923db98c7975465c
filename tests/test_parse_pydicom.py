"""Every file pydicom ships, classified as a careful human would.

pydicom reads most of the broken ones without complaint; these expectations
were set by looking at each file (hex dump, pydicom's own README notes).
"""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest

from pacscopy.scan.parse import find_lost_block, inspect_bytes
from pacscopy.scan.scan import read_and_inspect

from .conftest import PYDICOM_FILES

# Everything not listed here must be "ok".
NOT_OK = {
    # No StudyInstanceUID at all: a target cannot file it under any study.
    "JPEGLSNearLossless_08.dcm": ("corrupt", "missing_study_instance_uid"),
    "JPEGLSNearLossless_16.dcm": ("corrupt", "missing_study_instance_uid"),
    "SC_rgb_jls_lossy_line.dcm": ("corrupt", "missing_study_instance_uid"),
    "SC_rgb_jls_lossy_sample.dcm": ("corrupt", "missing_study_instance_uid"),
    # Pixel data declares 8192 bytes, the file ends 62 bytes short; pydicom reads it silently.
    "MR_truncated.dcm": ("corrupt", "truncated"),
    # A sequence runs past the end of the file.
    "rtplan_truncated.dcm": ("corrupt", "truncated"),
    # The meta says JPEG Baseline (explicit VR) but the dataset is implicit VR.
    "SC_rgb_jpeg.dcm": ("corrupt", "encoding_mismatch"),
    # Test fragments without any SOPInstanceUID in the dataset.
    "UN_sequence.dcm": ("corrupt", "missing_sop_instance_uid"),
    "empty_charset_LEI.dcm": ("corrupt", "missing_sop_instance_uid"),
    "meta_missing_tsyntax.dcm": ("corrupt", "missing_sop_instance_uid"),
    "nested_priv_SQ.dcm": ("corrupt", "missing_sop_instance_uid"),
    "no_meta_group_length.dcm": ("corrupt", "missing_sop_instance_uid"),
    "priv_SQ.dcm": ("corrupt", "missing_sop_instance_uid"),
    # NumberOfFrames '1A' (pydicom's test of a bad IS value): 15 frames of dose grid, count unreadable.
    "badVR.dcm": ("corrupt", "invalid_image_attributes"),
    # "CT_small without meta", but with one stray 0x20 byte before the dataset.
    "no_meta.dcm": ("corrupt", "unparseable"),
    "README.txt": ("not_dicom", None),
    "crayons.icc": ("not_dicom", None),
    "rtplan.dump": ("not_dicom", None),
    "rtstruct.dump": ("not_dicom", None),
    "test1.json": ("not_dicom", None),
    "test_PN.json": ("not_dicom", None),
    "zipMR.gz": ("not_dicom", None),
    "dicomdirtests/README.txt": ("not_dicom", None),
    "dicomdirtests/TINY_ALPHA/README": ("not_dicom", None),
    "dicomdirtests/DICOMDIR": ("dicomdir", None),
    "dicomdirtests/DICOMDIR-bigEnd": ("dicomdir", None),
    "dicomdirtests/DICOMDIR-empty.dcm": ("dicomdir", None),
    "dicomdirtests/DICOMDIR-implicit": ("dicomdir", None),
    "dicomdirtests/DICOMDIR-nopatient": ("dicomdir", None),
    "dicomdirtests/DICOMDIR-reordered": ("dicomdir", None),
    "dicomdirtests/TINY_ALPHA/DICOMDIR": ("dicomdir", None),
    # Records were removed without fixing the item lengths: a damaged DICOMDIR.
    "dicomdirtests/DICOMDIR-nooffset": ("dicomdir", "truncated"),
}

ALL_FILES = sorted(str(p.relative_to(PYDICOM_FILES)) for p in PYDICOM_FILES.rglob("*") if p.is_file())


def test_sample_set_is_complete() -> None:
    assert len(ALL_FILES) > 150
    for name in ("MR_truncated.dcm", "ExplVR_BigEndNoMeta.dcm", "image_dfl.dcm", "liver_1frame.dcm"):
        assert name in ALL_FILES
    assert set(NOT_OK) <= set(ALL_FILES)


@pytest.mark.parametrize("rel", ALL_FILES)
def test_pydicom_file_status(rel: str) -> None:
    row = read_and_inspect(os.fsencode(PYDICOM_FILES / rel))
    expected = NOT_OK.get(rel, ("ok", None))
    assert (row["status"], row["reason"]) == expected, row.get("detail")


OK_FILES = [r for r in ALL_FILES if r not in NOT_OK]
ATTRS = {
    "sop_instance_uid": "SOPInstanceUID", "sop_class_uid": "SOPClassUID",
    "study_instance_uid": "StudyInstanceUID", "series_instance_uid": "SeriesInstanceUID",
    "patient_id": "PatientID", "patient_name": "PatientName", "patient_birth_date": "PatientBirthDate",
    "accession_number": "AccessionNumber", "modality": "Modality", "study_date": "StudyDate",
    "study_description": "StudyDescription", "instance_number": "InstanceNumber",
}


@pytest.mark.parametrize("rel", OK_FILES)
def test_header_values_match_pydicom(rel: str) -> None:
    """The lean walker must read the same values pydicom does."""
    row = read_and_inspect(os.fsencode(PYDICOM_FILES / rel))
    ds = pydicom.dcmread(PYDICOM_FILES / rel, stop_before_pixels=True, force=True)
    for col, kw in ATTRS.items():
        v = ds.get(kw)
        if v is None or v == "":
            assert row[col] is None, (col, row[col])
        elif col == "instance_number":
            assert row[col] == int(v)
        else:
            assert row[col] == str(v).strip(), (col, row[col], str(v))


def test_transfer_syntax_detected_for_raw_datasets() -> None:
    row = read_and_inspect(os.fsencode(PYDICOM_FILES / "ExplVR_BigEndNoMeta.dcm"))
    assert row["has_meta"] is False and row["dataset_offset"] == 0
    assert row["transfer_syntax_uid"] == "1.2.840.10008.1.2.2"
    row = read_and_inspect(os.fsencode(PYDICOM_FILES / "MR_small_implicit.dcm"))
    assert row["has_meta"] is True and row["transfer_syntax_uid"] == "1.2.840.10008.1.2"


def test_dataset_offset_points_at_the_dataset() -> None:
    """The sender streams from dataset_offset: it must be exactly where pydicom's meta ends."""
    for rel in ("CT_small.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm"):
        p = PYDICOM_FILES / rel
        row = read_and_inspect(os.fsencode(p))
        with open(p, "rb") as f:
            pydicom.filereader.read_preamble(f, False)
            pydicom.filereader._read_file_meta_info(f)
            assert row["dataset_offset"] == f.tell()


def test_truncated_file_keeps_its_header_values() -> None:
    """A corrupt copy must still be matchable to an intact copy elsewhere."""
    row = read_and_inspect(os.fsencode(PYDICOM_FILES / "MR_truncated.dcm"))
    ds = pydicom.dcmread(PYDICOM_FILES / "MR_truncated.dcm", stop_before_pixels=True)
    assert row["status"] == "corrupt"
    assert row["sop_instance_uid"] == ds.SOPInstanceUID
    assert row["patient_id"] == ds.PatientID


def test_natural_zero_run_at_end_is_not_a_lost_block() -> None:
    data = (PYDICOM_FILES / "liver_1frame.dcm").read_bytes()
    assert data.endswith(bytes(9000))
    assert find_lost_block(data) is None


@pytest.mark.parametrize(
    "start,length,flagged",
    [
        (4096, 4096, True),  # one aligned block in the middle
        (8192, 8192, True),  # two blocks
        (4100, 8192, False),  # starts off a boundary
        (4096, 5000, False),  # ends off a boundary, not at the end
        (4096, 3000, False),  # too short
    ],
)
def test_lost_block_signature(start: int, length: int, flagged: bool) -> None:
    data = bytearray(b"\x01" * 20000)
    data[start : start + length] = bytes(length)
    assert (find_lost_block(bytes(data)) is not None) == flagged


def test_zero_run_to_end_of_file_from_boundary_is_flagged() -> None:
    data = bytearray(b"\x07" * 10000)
    data[8192:] = bytes(len(data) - 8192)  # 1808 bytes: too short
    assert find_lost_block(bytes(data)) is None
    data = bytearray(b"\x07" * 14000)
    data[8192:] = bytes(len(data) - 8192)  # 5808 bytes to EOF from a boundary
    assert find_lost_block(bytes(data)) == 8192


@pytest.mark.parametrize("cut", [0, 10, 131, 200, 300, 700, 1200])
def test_every_cut_of_a_good_file_is_corrupt_or_not_dicom(cut: int) -> None:
    data = (PYDICOM_FILES / "CT_small.dcm").read_bytes()[:cut]
    ins = inspect_bytes(data)
    assert ins.status in ("corrupt", "not_dicom"), (cut, ins)
    if cut > 132:
        assert (ins.status, ins.reason) == ("corrupt", "truncated")


def test_random_garbage_never_raises() -> None:
    import random

    rnd = random.Random(3)
    base = (PYDICOM_FILES / "CT_small.dcm").read_bytes()
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rnd.randint(1, 20)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        ins = inspect_bytes(bytes(data[: rnd.randrange(len(data))]))
        assert ins.status in ("ok", "corrupt", "suspect", "not_dicom", "dicomdir")


def _lost_block_numpy(buf: bytes) -> int | None:
    """The former numpy implementation of find_lost_block: the reference for the pure-Python one."""
    import numpy as np

    n, block = len(buf), 4096
    full = n // block
    if full < 2:
        return None
    arr = np.frombuffer(buf, dtype=np.uint8)
    zero = ~arr[: full * block].view(np.uint64).reshape(full, block // 8).any(axis=1)
    for b in np.flatnonzero(zero[1:]) + 1:
        start = int(b) * block
        if arr[start - 1] == 0:
            continue
        j = int(b)
        while j < full and zero[j]:
            j += 1
        run_end = j * block
        if run_end >= n or arr[run_end] != 0:
            return start
        if j == full and not arr[run_end:].any():
            return start
    return None


@pytest.mark.parametrize(
    "size,start,length,want",
    [
        (20000, 4096, 4096, 4096),  # exactly one block at offset 4096
        (20000, 4097, 8192, None),  # starts one byte after a boundary
        (20000, 4095, 8193, None),  # starts one byte before: the run starts off a boundary
        (14000, 8192, 5808, 8192),  # from a boundary to EOF, EOF not on a boundary
        (14000, 4096, 9904, 4096),  # two blocks and more, to EOF
        (12288, 8192, 4096, 8192),  # the last full block, EOF on the boundary
        (8191, 4096, 4095, None),  # one byte short of a full second block
        (4000, 0, 4000, None),  # shorter than one block
        (4096, 0, 4096, None),  # a single block: block 0 has no byte before it
        (20000, 0, 8192, None),  # zeros from the very start of the file
        (20000, 4096, 8191, None),  # ends one byte before a boundary, not at EOF
    ],
)
def test_lost_block_edges(size: int, start: int, length: int, want: int | None) -> None:
    data = bytearray(b"\x05" * size)
    data[start : start + length] = bytes(len(data[start : start + length]))
    assert find_lost_block(bytes(data)) == want
    assert find_lost_block(memoryview(bytes(data))) == want
    assert _lost_block_numpy(bytes(data)) == want


def test_lost_block_on_a_mapped_file(tmp_path: Path) -> None:
    import mmap

    data = bytearray(os.urandom(3 << 20))
    data[1 << 20 : (1 << 20) + 3 * 4096] = bytes(3 * 4096)
    p = tmp_path / "x.bin"
    p.write_bytes(data)
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert find_lost_block(mm) == 1 << 20
        view = memoryview(mm)
        assert find_lost_block(view) == 1 << 20
        view.release()


def test_lost_block_agrees_with_the_numpy_reference() -> None:
    import random

    rnd = random.Random(7)
    block = 4096
    flagged = 0
    for _ in range(3000):
        n = rnd.choice([rnd.randrange(0, 5 * block), rnd.randrange(0, 24 * block), 2 * block, 2 * block + 1])
        data = bytearray([rnd.choice([1, 0x80, 255])]) * n
        for _ in range(rnd.randrange(30) if rnd.random() < 0.3 else 0):
            data[rnd.randrange(n)] = 0  # scattered natural zeros
        for _ in range(rnd.randrange(4)):
            if not n:
                break
            s = rnd.choice([rnd.randrange(n), rnd.randrange(n) // block * block,
                            rnd.randrange(n) // block * block + rnd.choice([-1, 1])])
            s = max(0, min(s, n))
            length = rnd.choice([block, 2 * block, block - 1, block + 1, n - s, rnd.randrange(1, 6 * block)])
            data[s : s + length] = bytes(len(data[s : s + length]))
        want = _lost_block_numpy(bytes(data))
        assert find_lost_block(bytes(data)) == want
        flagged += want is not None
    assert flagged > 100


def test_sq_table_is_the_dictionary_of_the_installed_pydicom() -> None:
    from pydicom.datadict import DicomDictionary

    from pacscopy.scan.sqtags import SQ_TAGS

    from pacscopy.scan.sqtags import FIXED_SIZE_TAGS, dictionary_tables

    sq, sizes = dictionary_tables()
    assert FIXED_SIZE_TAGS == sizes and SQ_TAGS == set(sq), (
        "regenerate: python -m pacscopy.scan.sqtags > pacscopy/scan/sqtags.py"
    )
    assert FIXED_SIZE_TAGS[0x00280010] == 2 and FIXED_SIZE_TAGS[0x00189087] == 8  # Rows US, DiffusionBValue FD
    assert SQ_TAGS == {t for t, e in DicomDictionary.items() if e[0] == "SQ"}, (
        "regenerate: python -m pacscopy.scan.sqtags > pacscopy/scan/sqtags.py"
    )


def test_parser_imports_neither_pydicom_nor_numpy() -> None:
    """The scan workers import only the parser: it must stay free of the heavy modules."""
    import subprocess
    import sys

    heavy = ("pydicom", "numpy", "duckdb", "typer")
    code = ("import sys, pacscopy.scan.fileread, pacscopy.scan.parse, pacscopy.scan.pool; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
