"""Hostile DICOM objects built byte by byte, for the hardening, fuzz and receiver tests.

pydicom's writer cannot build most of them (it recurses into sequences, it fixes
lengths): these are written as raw explicit VR little endian bytes behind a file meta
made by pydicom.
"""

from __future__ import annotations

import struct
import warnings
import zlib

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

SC = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
CONTENT_SEQUENCE = 0x0040A730


def element(tag: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element (value padded to even length for text VRs)."""
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"OF", b"OD", b"OL", b"UC", b"UR"):
        return head + b"\0\0" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def text(tag: int, vr: bytes, value: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) % 2:
        raw += b"\0" if vr == b"UI" else b" "
    return element(tag, vr, raw)


def us(tag: int, value: int) -> bytes:
    return element(tag, b"US", struct.pack("<H", value))


def identity(sop: str | None = None) -> tuple[str, bytes]:
    """The SOPInstanceUID and the identifying top-level elements every object needs."""
    sop = sop or generate_uid()
    body = (text(0x00080016, b"UI", SC) + text(0x00080018, b"UI", sop) + text(0x00080060, b"CS", "OT")
            + text(0x00100020, b"LO", "HOSTILE1") + text(0x0020000D, b"UI", generate_uid())
            + text(0x0020000E, b"UI", generate_uid()))
    return sop, body


def part10(sop: str, dataset: bytes, syntax: str = ExplicitVRLittleEndian) -> bytes:
    """Preamble, DICM and a file meta made by pydicom, then ``dataset`` as given."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SC
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    buf.write(b"\0" * 128 + b"DICM")
    with warnings.catch_warnings():  # pydicom warns about the invalid UIDs some tests want
        warnings.simplefilter("ignore")
        write_file_meta_info(buf, meta, enforce_standard=True)
    return buf.getvalue() + dataset


def nested(depth: int, defined: bool = False) -> bytes:
    """ContentSequence nested ``depth`` levels deep, each holding one item with the next."""
    inner = text(0x0040A040, b"CS", "TEXT")
    if defined:
        for _ in range(depth):
            item = struct.pack("<HHI", 0xFFFE, 0xE000, len(inner)) + inner
            inner = element(CONTENT_SEQUENCE, b"SQ", item)
        return inner
    head = (struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF)
            + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF))
    tail = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return head * depth + inner + tail * depth


def deep_object(depth: int = 1000, defined: bool = False, sop: str | None = None) -> tuple[str, bytes]:
    """A Part 10 object whose ContentSequence nests ``depth`` levels deep."""
    sop, body = identity(sop)
    return sop, part10(sop, body + nested(depth, defined))


def image(rows: int = 4, cols: int = 4, bits: int = 8, spp: int = 1, pixels: bytes | None = None,
          frames: str | None = None, extra: bytes = b"", photometric: str = "MONOCHROME2",
          syntax: str = ExplicitVRLittleEndian, sop: str | None = None) -> bytes:
    """A small native image; every attribute can be set to something absurd."""
    sop, body = identity(sop)
    if pixels is None:
        pixels = bytes(range(256)) * (rows * cols * spp * bits // 8 // 256 + 1)
        pixels = pixels[: (rows * cols * spp * bits + 7) // 8]
        pixels += b"\0" * (len(pixels) & 1)
    attrs = us(0x00280002, spp) + text(0x00280004, b"CS", photometric)
    if frames is not None:
        attrs += text(0x00280008, b"IS", frames)
    attrs += us(0x00280010, rows) + us(0x00280011, cols) + us(0x00280100, bits)
    attrs += us(0x00280101, min(bits, 16)) + us(0x00280102, min(bits, 16) - 1) + us(0x00280103, 0)
    return part10(sop, body + attrs + extra + element(0x7FE00010, b"OB", pixels), syntax)


def encapsulated_pixels(fragments: list[bytes]) -> bytes:
    """An undefined-length PixelData of fragments (empty basic offset table first)."""
    out = struct.pack("<HH", 0x7FE0, 0x0010) + b"OB\0\0" + struct.pack("<I", 0xFFFFFFFF)
    out += struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    for f in fragments:
        f += b"\0" * (len(f) & 1)
        out += struct.pack("<HHI", 0xFFFE, 0xE000, len(f)) + f
    return out + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def deflated(dataset: bytes, sop: str, level: int = 9) -> bytes:
    """A Part 10 file in Deflated Explicit VR Little Endian holding ``dataset``."""
    c = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return part10(sop, c.compress(dataset) + c.flush(), "1.2.840.10008.1.2.1.99")
