"""No false ``ok``: what a hostile test campaign found the scanner accepting, and what it crashed on.

Each object here is built byte by byte (tests/hostile.py) and judged against the standard,
not against pydicom's leniency: a file the scanner calls ``ok`` is one a target can decode.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from pacscopy.scan import parse as dicomparse
from pacscopy.scan.parse import inspect_bytes
from pacscopy.scan.fileread import read_and_inspect, read_rows
from pacscopy.receive import Receiver
from pacscopy.testing.synth import make_archive

from . import hostile
from .conftest import PYDICOM_FILES, rows
from .hostile import element, encapsulated_pixels, identity, image, part10, text, us

EXPLICIT = "1.2.840.10008.1.2.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


def verdict(data: bytes) -> tuple[str, str | None]:
    ins = inspect_bytes(data)
    return ins.status, ins.reason


def _meta_elements(data: bytes) -> dict[int, tuple[int, int]]:
    """Group 0002 element -> (offset of its header, offset after its value) in a Part 10 file."""
    pos, out = 132, {}
    while data[pos : pos + 2] == b"\x02\x00":
        g, e, vr = struct.unpack_from("<HH2s", data, pos)
        if vr in (b"OB", b"UN"):
            length, vpos = struct.unpack_from("<I", data, pos + 8)[0], pos + 12
        else:
            length, vpos = struct.unpack_from("<H", data, pos + 6)[0], pos + 8
        out[(g << 16) | e] = (pos, vpos + length)
        pos = vpos + length
    return out


def swallow_transfer_syntax(data: bytes) -> bytes:
    """A damaged length in the file meta: MediaStorageSOPInstanceUID's value swallows the
    TransferSyntaxUID element that follows it (what a hostile campaign found delivered)."""
    meta = _meta_elements(data)
    start, _ = meta[0x00020003]
    _, ts_end = meta[0x00020010]
    out = bytearray(data)
    struct.pack_into("<H", out, start + 6, ts_end - (start + 8))
    return bytes(out)


def jpeg_with_damaged_meta() -> bytes:
    """pydicom's JPEG Baseline sample (explicit VR LE dataset, JPEG fragments) with its
    TransferSyntaxUID swallowed by the length before it."""
    data = swallow_transfer_syntax((PYDICOM_FILES / "SC_rgb_dcmtk_+eb+cy+np.dcm").read_bytes())
    assert b"1.2.840.10008.1.2.4.50" in data[:400]
    return data


# -- 1. encapsulated pixel data under a native syntax, and the other way round --------------
def test_jpeg_fragments_behind_a_damaged_meta_are_corrupt() -> None:
    ins = inspect_bytes(jpeg_with_damaged_meta())
    assert ins.transfer_syntax_uid == EXPLICIT and ins.encapsulated  # the guess the scanner must not trust
    assert (ins.status, ins.reason) == ("corrupt", "pixel_encoding_mismatch")
    assert "encapsulated" in (ins.detail or "") and EXPLICIT in (ins.detail or "")
    assert ins.values["sop_instance_uid"]  # still matchable to an intact copy


def test_fragments_under_an_explicit_syntax_are_corrupt() -> None:
    sop, body = identity()
    attrs = (us(0x00280002, 1) + text(0x00280004, b"CS", "MONOCHROME2") + us(0x00280010, 4) + us(0x00280011, 4)
             + us(0x00280100, 8))
    data = part10(sop, body + attrs + encapsulated_pixels([b"\xff\xd8\xff\xdb" + bytes(20)]))
    assert verdict(data) == ("corrupt", "pixel_encoding_mismatch")
    data = part10(sop, body + attrs + encapsulated_pixels([b"\xff\xd8\xff\xdb" + bytes(20)]), JPEG_BASELINE)
    assert verdict(data) == ("ok", None)


def test_native_pixels_under_an_encapsulated_syntax_are_corrupt() -> None:
    status, reason = verdict(image(syntax=JPEG_BASELINE))
    assert (status, reason) == ("corrupt", "pixel_encoding_mismatch")


# -- the transfer syntax itself ---------------------------------------------------------------
@pytest.mark.parametrize("ts", ["1.2.840.1000x.1.2.1", "1.2.840.10008..2.1", "1.2.840.10008.01.2.1",
                                "1.2.840.10008.1.2.9"])
def test_a_transfer_syntax_that_is_no_uid_is_corrupt(ts: str) -> None:
    ins = inspect_bytes(image(syntax=ts))
    assert (ins.status, ins.reason) == ("corrupt", "invalid_transfer_syntax"), ins.detail
    assert ins.values["sop_instance_uid"]


def test_a_private_transfer_syntax_is_left_alone() -> None:
    assert verdict(image(syntax="1.2.826.0.1.3680043.8.498.999")) == ("ok", None)


# -- image attributes ---------------------------------------------------------------------
def test_pixel_data_without_rows_is_corrupt() -> None:
    sop, body = identity()
    attrs = us(0x00280002, 1) + text(0x00280004, b"CS", "MONOCHROME2") + us(0x00280011, 4) + us(0x00280100, 8)
    ins = inspect_bytes(part10(sop, body + attrs + element(0x7FE00010, b"OB", bytes(16))))
    assert (ins.status, ins.reason) == ("corrupt", "missing_image_attributes")
    assert "without Rows:" in (ins.detail or "")
    ins = inspect_bytes(image(photometric=""))
    assert (ins.status, ins.reason) == ("corrupt", "missing_image_attributes")
    assert "without PhotometricInterpretation" in (ins.detail or "")


def test_image_attributes_hold_one_value() -> None:
    sop, body = identity()
    attrs = (us(0x00280002, 1) + text(0x00280004, b"CS", "MONOCHROME2") + us(0x00280010, 4)
             + element(0x00280011, b"US", struct.pack("<HH", 4, 2)) + us(0x00280100, 8))
    ins = inspect_bytes(part10(sop, body + attrs + element(0x7FE00010, b"OB", bytes(16))))
    assert (ins.status, ins.reason) == ("corrupt", "invalid_image_attributes")
    assert "Columns holds 2 values" in (ins.detail or "")


def test_a_damaged_specific_character_set_is_corrupt() -> None:
    sop, body = identity()
    for value, vr in ((b"ISO_IR \x00\x000", b"CS"), (b"ISO_IR 100", b"SS")):
        ins = inspect_bytes(part10(sop, element(0x00080005, vr, value) + body))
        assert (ins.status, ins.reason) == ("corrupt", "invalid_character_set"), ins.detail
        assert ins.values["sop_instance_uid"] == sop
    assert verdict(part10(sop, text(0x00080005, b"CS", "ISO_IR 100") + body)) == ("ok", None)


def test_a_damaged_file_meta_is_corrupt() -> None:
    data = bytearray(image())
    assert data[132:136] == b"\x02\x00\x00\x00" and data[136:140] == b"UL\x04\x00"
    (group_length,) = struct.unpack_from("<I", data, 140)
    wrong_vr = bytes(data[:136] + b"UN\0\0" + struct.pack("<I", 4) + data[140:])
    assert verdict(wrong_vr) == ("corrupt", "unparseable")
    # VR and length read as one implicit length: the group length swallows the whole meta,
    # TransferSyntaxUID included (pydicom fails on it; the encoding would be a guess)
    swallowed = bytes(data[:136] + struct.pack("<I", 4 + group_length) + data[140:])
    assert verdict(swallowed) == ("corrupt", "invalid_vr_length")


@pytest.mark.parametrize("kwargs,word", [
    ({"bits": 8208, "pixels": bytes(16)}, "BitsAllocated 8208"),
    ({"bits": 12, "pixels": bytes(24)}, "BitsAllocated 12"),
    ({"spp": 29699, "pixels": bytes(16)}, "SamplesPerPixel 29699"),
    ({"rows": 0, "pixels": b""}, "Rows x Columns 0 x 4"),
    ({"frames": "0"}, "NumberOfFrames 0"),
    ({"frames": "1A"}, "NumberOfFrames '1A'"),
])
def test_absurd_image_attributes_are_corrupt(kwargs: dict, word: str) -> None:
    ins = inspect_bytes(image(**kwargs))
    assert (ins.status, ins.reason) == ("corrupt", "invalid_image_attributes")
    assert word in (ins.detail or "")


def test_bits_stored_above_bits_allocated_is_corrupt() -> None:
    sop, body = identity()
    attrs = (us(0x00280002, 1) + text(0x00280004, b"CS", "MONOCHROME2") + us(0x00280010, 2) + us(0x00280011, 2)
             + us(0x00280100, 8) + us(0x00280101, 12) + us(0x00280102, 11))
    ins = inspect_bytes(part10(sop, body + attrs + element(0x7FE00010, b"OB", bytes(4))))
    assert (ins.status, ins.reason) == ("corrupt", "invalid_image_attributes")


# -- native pixel data length -------------------------------------------------------------
@pytest.mark.parametrize("kwargs,expected", [
    ({}, ("ok", None)),
    ({"rows": 3, "cols": 3}, ("ok", None)),  # 9 bytes + the padding byte
    ({"rows": 3, "cols": 3, "pixels": bytes(9)}, ("ok", None)),  # odd length, unpadded: readable
    ({"rows": 3, "cols": 3, "bits": 1}, ("ok", None)),  # 9 bits packed in 2 bytes
    ({"rows": 3, "cols": 3, "bits": 1, "pixels": b"\x01" * 10}, ("corrupt", "pixel_length_mismatch")),
    ({"rows": 2, "cols": 2, "spp": 3, "photometric": "RGB"}, ("ok", None)),
    ({"rows": 2, "cols": 2, "spp": 3, "photometric": "YBR_FULL_422", "pixels": bytes(8)}, ("ok", None)),
    ({"rows": 2, "cols": 2, "spp": 3, "photometric": "YBR_FULL_422", "pixels": b"\x01" * 12},
     ("corrupt", "pixel_length_mismatch")),
    ({"frames": "3", "pixels": bytes(48)}, ("ok", None)),
    ({"frames": "3", "pixels": bytes(32)}, ("corrupt", "pixel_length_mismatch")),  # a frame missing
    ({"pixels": bytes(14)}, ("corrupt", "pixel_length_mismatch")),  # short
    ({"pixels": bytes(16) + b"\x01\x02"}, ("corrupt", "pixel_length_mismatch")),  # data after the values
    ({"pixels": bytes(16) + bytes(128)}, ("ok", None)),  # zero padding, as pydicom's MR_small_padded.dcm
    ({"bits": 16, "pixels": bytes(16)}, ("corrupt", "pixel_length_mismatch")),  # half the image
])
def test_native_pixel_data_length_against_the_image_attributes(kwargs: dict, expected: tuple) -> None:
    ins = inspect_bytes(image(**kwargs))
    assert (ins.status, ins.reason) == expected, ins.detail


# -- lengths that cannot fit their VR -------------------------------------------------------
@pytest.mark.parametrize("vr,length", [(b"US", 3), (b"AT", 5), (b"FD", 4), (b"UL", 6), (b"SS", 1)])
def test_a_length_that_cannot_fit_its_vr_is_corrupt(vr: bytes, length: int) -> None:
    sop, body = identity()
    # (0018,xxxx) private-free elements between the identity and the image attributes
    data = part10(sop, body[:0] + body + element(0x00209999, vr, bytes(length)))
    ins = inspect_bytes(data)
    assert (ins.status, ins.reason) == ("corrupt", "invalid_vr_length"), ins.detail
    assert f"{vr.decode()} of {length} bytes" in (ins.detail or "")


def test_a_long_uid_is_a_finding_not_corrupt() -> None:
    sop, body = identity()
    long_uid = "1.2.3." + "4" * 70
    assert verdict(part10(sop, body + text(0x00200052, b"UI", long_uid))) == ("ok", None)


# -- 2. deep nesting ----------------------------------------------------------------------
@pytest.mark.parametrize("defined", [False, True])
def test_absurd_nesting_is_corrupt_not_a_crash(defined: bool) -> None:
    _, data = hostile.deep_object(1000, defined)
    ins = inspect_bytes(data)
    assert (ins.status, ins.reason) == ("corrupt", "nesting_too_deep")
    assert str(dicomparse.MAX_NESTING) in (ins.detail or "")
    assert ins.values["sop_instance_uid"]
    _, data = hostile.deep_object(dicomparse.MAX_NESTING, defined)
    assert verdict(data) == ("ok", None)


def test_deep_nesting_in_a_worker_batch_costs_no_other_file_its_row(tmp_path: Path, cli) -> None:
    root = tmp_path / "src"
    make_archive(root, patients=2, studies_per_patient=1, series_per_study=2, instances_per_series=5,
                 defects=False, conflicts=False, specials=False)
    deep_sop, data = hostile.deep_object(1000)
    (root / "deep.dcm").write_bytes(data)
    _, data = hostile.deep_object(3000, defined=True)
    (root / "deeper.dcm").write_bytes(data)
    n_files = sum(1 for p in root.rglob("*") if p.is_file())
    idx = tmp_path / "i.duckdb"
    r = cli("scan", root, "--index", idx, "-q", "--workers", "2")
    assert r.code == 0, r.err
    got = dict(rows(idx, "SELECT status || '/' || coalesce(reason, ''), count(*) FROM files GROUP BY 1"))
    assert got == {"ok/": n_files - 2, "corrupt/nesting_too_deep": 2}
    assert cli("check", "--index", idx, "-q").code in (0, 1)
    assert rows(idx, "SELECT disposition FROM plan WHERE sop_instance_uid = $s", {"s": deep_sop}) == [("quarantine",)]


def test_a_parser_exception_on_one_file_becomes_its_row(tmp_path: Path, cli, monkeypatch) -> None:
    import pacscopy.scan.fileread as fileread

    real = fileread.inspect_bytes

    def flaky(buf):  # type: ignore[no-untyped-def]
        if b"POISON" in bytes(buf[:4096]):
            raise RecursionError("maximum recursion depth exceeded")
        return real(buf)

    monkeypatch.setattr(fileread, "inspect_bytes", flaky)
    root = tmp_path / "src"
    root.mkdir()
    for i in range(5):
        (root / f"ok{i}.dcm").write_bytes(image())
    sop, body = identity()
    (root / "poison.dcm").write_bytes(part10(sop, body + text(0x00081030, b"LO", "POISON")))
    got = read_rows(sorted(os.fsencode(p) for p in root.iterdir()))
    assert len(got) == 6
    row = read_and_inspect(os.fsencode(root / "poison.dcm"))
    assert (row["status"], row["reason"]) == ("corrupt", "parser_error")
    assert "RecursionError" in row["detail"]
    idx = tmp_path / "i.duckdb"
    r = cli("scan", root, "--index", idx, "-q", "--workers", "1")
    assert r.code == 0, r.err
    assert sorted(rows(idx, "SELECT status, reason FROM files")) == [("corrupt", "parser_error")] + [("ok", None)] * 5


# -- 4. decompression bombs -----------------------------------------------------------------
def _bomb(inflated: int) -> bytes:
    """A valid deflated object whose PixelData of zeros inflates to ``inflated`` bytes."""
    sop, body = identity()
    side = int((inflated // 2) ** 0.5) // 2 * 2
    attrs = (us(0x00280002, 1) + text(0x00280004, b"CS", "MONOCHROME2") + us(0x00280010, side)
             + us(0x00280011, side) + us(0x00280100, 16) + us(0x00280101, 16) + us(0x00280102, 15))
    head = body + attrs + struct.pack("<HH", 0x7FE0, 0x0010) + b"OW\0\0" + struct.pack("<I", side * side * 2)
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [c.compress(head)]
    zeros = bytes(1 << 20)
    left = side * side * 2
    while left:
        parts.append(c.compress(zeros[: min(left, len(zeros))]))
        left -= min(left, len(zeros))
    parts.append(c.flush())
    return part10(sop, b"".join(parts), dicomparse.DEFLATED_LE)


def test_a_decompression_bomb_is_corrupt() -> None:
    data = _bomb(80 << 20)  # 80 MB of zeros in ~80 KB: over the 64 MiB floor, ~1000x its size
    assert len(data) < 200_000
    ins = inspect_bytes(data)
    assert (ins.status, ins.reason) == ("corrupt", "inflate_limit")
    assert "decompression bomb" in (ins.detail or "")


def test_the_inflate_ratio_applies_above_the_floor(monkeypatch) -> None:
    data = _bomb(2 << 20)
    assert verdict(data) == ("ok", None)  # 2 MB: under the floor, whatever the ratio
    monkeypatch.setattr(dicomparse, "INFLATE_FLOOR", 1 << 20)
    assert verdict(data) == ("corrupt", "inflate_limit")
    monkeypatch.setattr(dicomparse, "INFLATE_RATIO", 10_000)
    assert verdict(data) == ("ok", None)


def test_a_cut_deflated_stream_is_truncated() -> None:
    data = _bomb(1 << 20)
    assert verdict(data[: len(data) - 40]) == ("corrupt", "truncated")


# -- check, plan and send never let them through --------------------------------------------
def test_jpeg_with_damaged_meta_is_quarantined_and_never_sent(tmp_path: Path, cli) -> None:
    root = tmp_path / "src"
    make_archive(root, patients=1, studies_per_patient=1, series_per_study=1, instances_per_series=3,
                 defects=False, conflicts=False, specials=False)
    (root / "damaged_jpeg.dcm").write_bytes(jpeg_with_damaged_meta())
    (root / "bad_ts.dcm").write_bytes(image(syntax="1.2.840.1000x.1.2.1"))
    (root / "short.dcm").write_bytes(image(pixels=bytes(14)))
    idx = tmp_path / "i.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    cli("check", "--index", idx, "-q")
    got = dict(rows(idx, "SELECT f.reason, p.disposition FROM plan_files p JOIN files f USING (path) "
                         "WHERE f.status = 'corrupt'"))
    assert got == {"pixel_encoding_mismatch": "quarantine", "invalid_transfer_syntax": "quarantine",
                   "pixel_length_mismatch": "quarantine"}
    bad = {s for (s,) in rows(idx, "SELECT sop_instance_uid FROM files WHERE status = 'corrupt'")}
    assert len(bad) == 3
    rx = Receiver(tmp_path / "rx", ae_title="RX")
    port = rx.start()
    try:
        r = cli("send", "--target", f"RX@127.0.0.1:{port}", "--index", idx, "-q")
        assert r.code == 0, r.out + r.err
    finally:
        rx.stop()
    sent = {s for (s,) in rows(idx, "SELECT sop_instance_uid FROM plan WHERE disposition = 'send'")}
    assert set(rx.catalogue) == sent and len(sent) >= 3
    assert not bad & set(rx.catalogue)
    assert not bad & {p.stem for p in (tmp_path / "rx").glob("*.dcm")}


def _implicit(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


@pytest.mark.parametrize("extra,ok", [
    (_implicit(0x00280010, b"\x04\x00"), True),
    (_implicit(0x00280010, b"\x04\x00\x00"), False),  # Rows (US) of 3 bytes
    (_implicit(0x00189087, bytes(4)), False),  # DiffusionBValue (FD) of 4 bytes
])
def test_implicit_vr_lengths_are_judged_by_the_dictionary(extra: bytes, ok: bool) -> None:
    elements = [_implicit(0x00080016, b"1.2.840.10008.5.1.4.1.1.7\0"), _implicit(0x00080018, b"1.2.3.4"),
                _implicit(0x0020000D, b"1.2.3.5\0"), extra]
    data = b"".join(sorted(elements, key=lambda e: struct.unpack_from("<HH", e)))
    assert verdict(data) == (("ok", None) if ok else ("corrupt", "invalid_vr_length"))


def test_an_implicit_group_length_holds_one_ul() -> None:
    body = _implicit(0x00080016, b"1.2.840.10008.5.1.4.1.1.7\0") + _implicit(0x00080018, b"1.2.3.4")
    body += _implicit(0x0020000D, b"1.2.3.5\0")
    assert verdict(_implicit(0x00080000, bytes(4)) + body) == ("ok", None)
    assert verdict(_implicit(0x00080000, bytes(6)) + body) == ("corrupt", "invalid_vr_length")


def test_a_new_reason_with_an_intact_copy_is_recoverable(tmp_path: Path, cli) -> None:
    """As for any corrupt file: the damaged copy is quarantined, the intact one is sent."""
    root = tmp_path / "src"
    root.mkdir()
    intact = PYDICOM_FILES / "SC_rgb_dcmtk_+eb+cy+np.dcm"
    (root / "intact.dcm").write_bytes(intact.read_bytes())
    (root / "damaged.dcm").write_bytes(jpeg_with_damaged_meta())
    idx = tmp_path / "i.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    cli("check", "--index", idx, "-q")
    got = rows(idx, "SELECT severity, recoverable FROM findings WHERE check_id = 'corrupt_file'")
    assert got == [("warning", True)]
    plan = sorted(rows(idx, "SELECT path, disposition FROM plan_files"))
    assert plan == [(str(root / "damaged.dcm"), "quarantine"), (str(root / "intact.dcm"), "send")]
