"""Seeded fuzzing of pydicom's sample files: the scanner never crashes and never calls a file ``ok``
that pydicom cannot fully read.

3,000 mutations (bit flips, truncations, damaged length fields, inserted and deleted bytes,
mostly in the header where damage matters) of every small sample file that is ``ok``
unmutated. They are scanned as one archive with two worker processes, then every file the
scanner calls ``ok`` is read by pydicom: every element's value, and native PixelData at
least as long as its image attributes say. Runs in ~15 s on 2 cores.

Where pacscopy is right and pydicom is not, the case is listed in :data:`PACSCOPY_IS_RIGHT`
with the reason, and the oracle skips it by that rule only.
"""

from __future__ import annotations

import collections
import io
import logging
import random
import warnings
from pathlib import Path

import pydicom
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import AllTransferSyntaxes

from .conftest import PYDICOM_FILES, rows
from .test_parse_pydicom import ALL_FILES, NOT_OK

SEED = 20261201
MUTATIONS = 3000
MAX_BASE_SIZE = 48_000

#: Files pacscopy calls ``ok`` that pydicom cannot read fully, and why pacscopy is right.
PACSCOPY_IS_RIGHT = {
    "private_transfer_syntax": (
        "A TransferSyntaxUID outside the DICOM root (a flipped digit in '1.2.840.10008' reads as"
        " '1.2.840.10408'...) is a private syntax as far as any reader can tell (GE's implicit big"
        " endian is one), and the standard allows them. pydicom does not know how to decode its"
        " pixels, nor does a target: C-STORE negotiation refuses the syntax, so it is never"
        " delivered silently. Only the pixel length is not checked; every element still is."
    ),
}


def _bases() -> list[tuple[str, bytes]]:
    out = []
    for rel in ALL_FILES:
        p = PYDICOM_FILES / rel
        if rel not in NOT_OK and p.stat().st_size <= MAX_BASE_SIZE:
            out.append((rel, p.read_bytes()))
    return out


def mutate(rnd: random.Random, data: bytes) -> tuple[bytes, list[tuple[str, int]]]:
    """One to three damages, most within the first few KB (the header, where they matter)."""
    buf = bytearray(data)
    ops: list[tuple[str, int]] = []
    for _ in range(rnd.choice((1, 1, 1, 2, 3))):
        n = len(buf)
        if n < 8:
            break
        pos = rnd.randrange(min(n, rnd.choice((400, 1200, 4000, n))))
        op = rnd.choice(("flip", "flip", "truncate", "length", "length", "insert", "delete"))
        if op == "flip":
            buf[pos] ^= 1 << rnd.randrange(8)
        elif op == "truncate":
            del buf[rnd.randrange(n):]
        elif op == "length":  # a 16- or 32-bit field set to a telling value
            width = rnd.choice((2, 4))
            if pos + width > n:
                continue
            old = int.from_bytes(buf[pos : pos + width], "little")
            new = rnd.choice((0, 1, 3, 5, 0xFFFF, 0xFFFFFFFF, old + 1, old - 1, old + 2, old * 2,
                              rnd.randrange(1 << (8 * width))))
            buf[pos : pos + width] = (new % (1 << (8 * width))).to_bytes(width, "little")
        elif op == "insert":
            buf[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
        else:
            del buf[pos : pos + rnd.randint(1, 8)]
        ops.append((op, pos))
    return bytes(buf), ops


def pydicom_reads_fully(data: bytes) -> str | None:
    """None if pydicom reads every element's value (and native pixels of the declared length);
    else what failed. A rule of :data:`PACSCOPY_IS_RIGHT` that applies is returned as its key."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        for elem in ds.iterall():
            elem.value  # noqa: B018 -- converting the raw value is the test
        if "PixelData" not in ds:
            return None
        ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        if ts is not None and ts not in AllTransferSyntaxes:
            return "private_transfer_syntax"
        if ts is None or not ts.is_compressed:
            expected = get_expected_length(ds, "bytes")
            if len(ds.PixelData) < expected:
                return f"PixelData holds {len(ds.PixelData)} bytes, {expected} expected"
    except Exception as e:
        return f"{type(e).__name__}: {str(e)[:200]}"
    return None


def test_fuzzed_pydicom_files(tmp_path: Path, cli) -> None:
    rnd = random.Random(SEED)
    bases = _bases()
    assert len(bases) > 100
    root = tmp_path / "fuzz"
    root.mkdir()
    made: dict[str, tuple[str, list[tuple[str, int]], bytes]] = {}
    for i in range(MUTATIONS):
        rel, base = rnd.choice(bases)
        data, ops = mutate(rnd, base)
        name = f"m{i:05d}.dcm"
        (root / name).write_bytes(data)
        made[name] = (rel, ops, data)

    idx = tmp_path / "fuzz.duckdb"
    r = cli("scan", root, "--index", idx, "-q", "--workers", "2")
    assert r.code == 0, r.err
    got = rows(idx, "SELECT path, status, reason, detail FROM files")
    assert len(got) == MUTATIONS  # every file has its row
    by_status = collections.Counter(s for _, s, _, _ in got)
    assert set(by_status) <= {"ok", "corrupt", "suspect", "not_dicom", "dicomdir"}, by_status
    assert not [g for g in got if g[2] == "parser_error"], "the parser failed on a file"
    assert by_status["ok"] > 500 and by_status["corrupt"] > 1000, by_status  # the fuzzing bites

    wrong, excused = [], collections.Counter()
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for path, status, _, _ in got:
                if status != "ok":
                    continue
                rel, ops, data = made[Path(path).name]
                failure = pydicom_reads_fully(data)
                if failure in PACSCOPY_IS_RIGHT:
                    excused[failure] += 1
                elif failure is not None:
                    wrong.append(f"{Path(path).name} ({rel}, {ops}): {failure}")
    finally:
        logging.disable(logging.NOTSET)
    assert not wrong, f"{len(wrong)} file(s) ok for pacscopy that pydicom cannot read:\n" + "\n".join(wrong[:20])

