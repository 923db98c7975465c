"""A lean, defensive DICOM header walker.

pydicom is built to read what it can; a migration tool must know what it
cannot trust. ``pydicom.dcmread`` happily reads a file truncated inside its
pixel data, a header cut after 300 bytes, or garbage behind a valid file meta,
and with ``force=True`` it "reads" a JPEG. So the scanner walks every element
itself, checks that every declared length fits in its container and in the
file, detects the real encoding of the dataset, and decodes only the handful
of attributes the index needs. It never builds a pydicom Dataset and never
touches pixel values, which also makes it several times faster than
``dcmread`` on typical files.

It imports neither pydicom nor numpy at module import: a scan worker process
imports only this and xxhash, which keeps it small (pydicom and numpy would
cost each worker tens of MB). pydicom's character set code is loaded only for
a non-ASCII value.

The only entry point is :func:`inspect_bytes`; it never raises on bad content.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass, field
from typing import Any, Literal

import xxhash

from pacscopy.scan.sqtags import FIXED_SIZE_TAGS, SQ_TAGS

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

#: VRs with a 2-byte reserved field and a 4-byte length in explicit VR.
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
)
SHORT_VRS = frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT",
        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)
VALID_VRS = LONG_VRS | SHORT_VRS
UNDEFINED = 0xFFFFFFFF
ITEM = 0xFFFEE000
ITEM_DELIM = 0xFFFEE00D
SEQ_DELIM = 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
FLOAT_PIXEL_DATA = 0x7FE00008
DOUBLE_PIXEL_DATA = 0x7FE00009
DIRECTORY_RECORD_SEQUENCE = 0x00041220

#: Whether the scan digests each dataset per attribute (:func:`attr_digest`: an update's reason names
#: every attribute that changed). Off unless ``PACSCOPY_ATTR_DIGESTS=on``: it costs a first scan
#: about 17 % on small files and ~236 bytes per file in the index (BENCHMARKS.md, "Attribute
#: digests"); without it an update's reason names only the attributes the index keeps.
ATTR_DIGESTS = os.environ.get("PACSCOPY_ATTR_DIGESTS", "off").strip().lower() in ("on", "1", "yes", "true")

#: Sequences nested deeper than this make a file ``corrupt`` (``nesting_too_deep``). Real
#: objects stay far below (an SR content tree rarely passes 20 levels); the bound keeps the
#: walk's recursion well inside Python's stack, whatever a damaged or hostile file declares.
MAX_NESTING = 128

#: The encodings whose PixelData is native (a plain run of values, never fragments).
NATIVE_SYNTAXES = frozenset({IMPLICIT_VR_LE, EXPLICIT_VR_LE, DEFLATED_LE, EXPLICIT_VR_BE})
#: Every transfer syntax PS3.6 Table A-1 defines, retired ones included. A syntax under the
#: DICOM root that is not here is a damaged value (a flipped digit), not a new codec.
STANDARD_SYNTAXES = NATIVE_SYNTAXES | frozenset(
    {"1.2.840.10008.1.2.1.98", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.8.1",
     "1.2.840.10008.1.2.7.1", "1.2.840.10008.1.2.7.2", "1.2.840.10008.1.2.7.3"}
    | {f"1.2.840.10008.1.2.4.{n}" for n in (*range(50, 67), 70, 80, 81, *range(90, 96))}
    | {f"1.2.840.10008.1.2.4.{n}{s}" for n in range(100, 107) for s in ("", ".1")}
    | {f"1.2.840.10008.1.2.4.{n}" for n in (107, 108, 201, 202, 203, 204, 205)}
)
DICOM_ROOT = "1.2.840.10008."
#: Bits Allocated values a reader can decode: 1 (bit-packed) or whole bytes up to the
#: 64 of Double Float Pixel Data (PS3.5 8.1.1: 1 or a multiple of 8; no IOD uses more).
BITS_ALLOCATED = frozenset({1, 8, 16, 24, 32, 40, 48, 56, 64})
#: Samples per Pixel a reader can make sense of: 1 and 3 are defined (PS3.3 C.7.6.3.1.1),
#: 4 was the retired ARGB and CMYK; the standard leaves other counts undefined.
SAMPLES_PER_PIXEL = frozenset({1, 3, 4})
#: Value multiples of the fixed-size binary VRs: a length that is not one cannot be read.
VR_SIZES = {b"US": 2, b"SS": 2, b"UL": 4, b"SL": 4, b"FL": 4, b"FD": 8, b"AT": 4,
            b"OW": 2, b"OF": 4, b"OL": 4, b"OD": 8, b"OV": 8, b"SV": 8, b"UV": 8}
#: Implicit VR: tag -> 0 for a sequence, else the size of one value of its dictionary VR.
_IMPLICIT = {**FIXED_SIZE_TAGS, **dict.fromkeys(SQ_TAGS, 0)}
#: Short-length VR -> value multiple (0: text, any length); one lookup in the walk's hot loop.
_SHORT_SIZE = {vr: VR_SIZES.get(vr, 0) for vr in SHORT_VRS}

#: Top-level attributes the index keeps: tag -> column name.
TEXT_TAGS: dict[int, str] = {
    0x00080016: "sop_class_uid",
    0x00080018: "sop_instance_uid",
    0x00080020: "study_date",
    0x00080050: "accession_number",
    0x00080060: "modality",
    0x00081030: "study_description",
    0x00100010: "patient_name",
    0x00100020: "patient_id",
    0x00100021: "issuer_of_patient_id",
    0x00100030: "patient_birth_date",
    0x00100040: "patient_sex",
    0x0020000D: "study_instance_uid",
    0x0020000E: "series_instance_uid",
    0x00200011: "series_number",
    0x00200013: "instance_number",
    0x00280008: "number_of_frames",
}
US_TAGS: dict[int, str] = {
    0x00280002: "samples_per_pixel",
    0x00280010: "rows",
    0x00280011: "columns",
    0x00280100: "bits_allocated",
}
#: Text attributes whose bytes depend on SpecificCharacterSet.
CHARSET_COLUMNS = frozenset({"patient_name", "patient_id", "issuer_of_patient_id",
                             "accession_number", "study_description"})
SPECIFIC_CHARACTER_SET = 0x00080005
BLOCK = 4096
#: What the walker reads: file bytes, or a read-only map of a large file.
Buffer = bytes | bytearray | memoryview | mmap.mmap


_TEXT, _US, _PIXEL, _DIRECTORY, _CHARSET = range(5)
_KEYWORDS = {"rows": "Rows", "columns": "Columns", "bits_allocated": "BitsAllocated", "bits_stored": "BitsStored",
             "samples_per_pixel": "SamplesPerPixel", "high_bit": "HighBit"}
#: The top-level elements the walk keeps something of: tag -> (kind, value name).
#: Values not in the index (photometric, bits_stored, high_bit) serve the pixel checks.
_TOP_TAGS: dict[int, tuple[int, str]] = {
    **{t: (_TEXT, name) for t, name in TEXT_TAGS.items()},
    SPECIFIC_CHARACTER_SET: (_CHARSET, "specific_character_set"),
    0x00280004: (_TEXT, "photometric"),
    **{t: (_US, name) for t, name in US_TAGS.items()},
    0x00280101: (_US, "bits_stored"), 0x00280102: (_US, "high_bit"),
    PIXEL_DATA: (_PIXEL, "PixelData"), FLOAT_PIXEL_DATA: (_PIXEL, "FloatPixelData"),
    DOUBLE_PIXEL_DATA: (_PIXEL, "DoubleFloatPixelData"),
    DIRECTORY_RECORD_SEQUENCE: (_DIRECTORY, ""),
}


@dataclass(slots=True)
class Inspection:
    """What the scanner learned from one file's bytes."""

    status: str = "ok"
    reason: str | None = None
    detail: str | None = None
    has_meta: bool = False
    transfer_syntax_uid: str | None = None
    #: transfer syntax as found by looking at the bytes, when it differs from the meta
    detected_syntax: str | None = None
    dataset_offset: int | None = None
    meta_sop_class_uid: str | None = None
    meta_sop_instance_uid: str | None = None
    pixel_data_offset: int | None = None
    pixel_data_length: int | None = None
    encapsulated: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    #: top-level elements as walked, but private data elements: tag, element start, value start,
    #: value end (for :func:`attr_digest`)
    spans: list[tuple[int, int, int, int]] = field(default_factory=list)
    #: per-attribute digest of a sound dataset and its attributes (:func:`attr_digest`); None for anything else
    attr_digest: bytes | None = None
    attr_keys: bytes | None = None


class _Problem(Exception):
    """Internal: the walk hit damage. ``reason`` is the index reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


_STRUCTS = {
    big: tuple(struct.Struct((">" if big else "<") + f) for f in ("HH", "H", "I", "HHI", "HH2sH"))
    for big in (False, True)
}


class _Walker:
    """Walks elements of one encoding over one buffer, checking every length."""

    def __init__(self, buf: Buffer, explicit: bool, big: bool, file_end: int, depth: int = 0) -> None:
        self.buf = buf
        self.explicit = explicit
        self.big = big
        self.file_end = file_end
        #: sequences open around the element being walked (bounded by MAX_NESTING)
        self.depth = depth
        self.hh, self.h, self.i, self.hhi, self.hh2sh = _STRUCTS[big]

    # -- one element header -------------------------------------------------
    def header(self, pos: int, end: int) -> tuple[int, bytes | None, int, int]:
        """Return (tag, vr, length, value_offset) of the element at ``pos``."""
        if pos + 8 > end:
            raise self._cut(pos, end, "element header")
        if not self.explicit:
            g, el, length = self.hhi.unpack_from(self.buf, pos)
            return (g << 16) | el, None, length, pos + 8
        g, el, vr, short = self.hh2sh.unpack_from(self.buf, pos)
        tag = (g << 16) | el
        if g == 0xFFFE:  # items and delimiters have no VR in any syntax
            length = self.i.unpack_from(self.buf, pos + 4)[0]
            return tag, None, length, pos + 8
        if vr not in VALID_VRS:
            raise _Problem("unparseable", f"invalid VR {vr!r} in ({g:04X},{el:04X}) at offset {pos}")
        if vr in LONG_VRS:
            if pos + 12 > end:
                raise self._cut(pos, end, "element header")
            return tag, vr, self.i.unpack_from(self.buf, pos + 8)[0], pos + 12
        return tag, vr, short, pos + 8

    @staticmethod
    def bad_length(tag: int, vr: bytes, length: int, pos: int) -> _Problem:
        return _Problem(
            "invalid_vr_length",
            f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr.decode()} of {length} bytes at offset {pos}: "
            f"not a multiple of {VR_SIZES[vr]}, its values cannot be read",
        )

    def _cut(self, pos: int, end: int, what: str) -> _Problem:
        if end >= self.file_end:
            return _Problem("truncated", f"file ends inside {what} at offset {pos}")
        return _Problem("length_overrun", f"{what} at offset {pos} runs past the end of its item")

    def fits(self, tag: int, length: int, start: int, end: int, plausible: bool = True) -> None:
        if start + length <= end:
            return
        where = f"({tag >> 16:04X},{tag & 0xFFFF:04X}) declares {length} bytes at offset {start}"
        if end < self.file_end:
            raise _Problem("length_overrun", where + ", past the end of its sequence item")
        if plausible:
            raise _Problem("truncated", where + f", file ends after {end - start}")
        raise _Problem("length_overrun", where + f", only {end - start} remain")

    # -- datasets, sequences, fragments --------------------------------------
    def dataset(self, pos: int, end: int, top: Inspection | None, in_undefined_item: bool) -> int:
        """Walk a dataset from ``pos``; return the offset after it.

        ``top`` collects attribute values (top level only). Inside an item of
        undefined length the walk stops after the item delimiter. This loop is
        most of a scan's CPU time, so :meth:`header` is inlined here and the
        plausibility of a length is worked out only when it does not fit.
        """
        buf = self.buf
        explicit = self.explicit
        unpack_explicit, unpack_implicit = self.hh2sh.unpack_from, self.hhi.unpack_from
        unpack_length = self.i.unpack_from
        spans = top.spans.append if top is not None and ATTR_DIGESTS else None
        prev = -1
        while pos < end:
            if pos + 8 > end:
                raise self._cut(pos, end, "element header")
            vpos = pos + 8
            vr: bytes | None
            if explicit:
                g, el, vr, length = unpack_explicit(buf, pos)
                tag = (g << 16) | el
                if g == 0xFFFE:  # items and delimiters have no VR in any syntax
                    length = unpack_length(buf, pos + 4)[0]
                    vr = None
                elif vr in LONG_VRS:
                    if pos + 12 > end:
                        raise self._cut(pos, end, "element header")
                    length = unpack_length(buf, pos + 8)[0]
                    vpos = pos + 12
                    if vr in VR_SIZES and length != UNDEFINED and length % VR_SIZES[vr]:
                        raise self.bad_length(tag, vr, length, pos)
                else:
                    size = _SHORT_SIZE.get(vr)
                    if size is None:
                        raise _Problem("unparseable", f"invalid VR {vr!r} in ({g:04X},{el:04X}) at offset {pos}")
                    if size and length % size:
                        raise self.bad_length(tag, vr, length, pos)
            else:
                g, el, length = unpack_implicit(buf, pos)
                tag = (g << 16) | el
                # Implicit VR: the dictionary says which elements are sequences, and which
                # hold fixed-size values: all the walk needs to know of a VR it cannot read.
                vr = None
                size = _IMPLICIT.get(tag)
                if size is not None:
                    if not size:
                        vr = b"SQ"
                    elif length % size and length != UNDEFINED:
                        raise _Problem("invalid_vr_length", f"({g:04X},{el:04X}) of {length} bytes at offset {pos}: "
                                       f"not a multiple of {size}, the size of its values in the dictionary")
                elif not el and length != 4 and g != 0xFFFE:
                    raise _Problem("invalid_vr_length", f"group length ({g:04X},0000) of {length} bytes at offset "
                                   f"{pos}: a UL holds 4")
            if tag == ITEM_DELIM:
                if in_undefined_item:
                    return vpos
                raise _Problem("unparseable", f"stray item delimiter at offset {pos}")
            if g == 0xFFFE:
                raise _Problem("unparseable", f"stray item tag at offset {pos}")
            if tag <= prev:
                raise _Problem(
                    "unparseable",
                    f"tag ({tag >> 16:04X},{tag & 0xFFFF:04X}) out of order at offset {pos}",
                )
            prev = tag
            if length == UNDEFINED:
                start = pos
                if tag == PIXEL_DATA:
                    pos = self.fragments(vpos, end)
                    if top is not None:
                        top.pixel_data_offset, top.encapsulated = vpos, True
                        top.pixel_data_length = pos - vpos
                        top.values["pixel_keyword"] = "PixelData"
                elif vr == b"UN" and explicit:
                    # Undefined-length UN is a sequence encoded implicit VR LE.
                    inner = _Walker(buf, False, False, self.file_end, self.depth)
                    pos = inner.sequence(vpos, end, tag)
                elif vr in (b"SQ", None, b"UN") or not explicit:
                    pos = self.sequence(vpos, end, tag)
                else:
                    raise _Problem(
                        "unparseable",
                        f"undefined length on {vr.decode()} element at offset {pos}",
                    )
                if spans is not None and not (g & 1 and el >= 0x1000):
                    spans((tag, start, vpos, pos))
                continue
            if vpos + length > end:  # raises: truncated or length_overrun
                if tag == PIXEL_DATA and top is not None:
                    plausible = _plausible_pixel_length(top.values, length)
                else:
                    plausible = not (length > 0x7FFFFFFF or (length & 1 and length > 1))
                self.fits(tag, length, vpos, end, plausible)
            if vr == b"SQ" and length:
                self.sequence_defined(vpos, vpos + length, tag)
            elif top is not None:
                wanted = _TOP_TAGS.get(tag)
                if wanted is not None:
                    kind, name = wanted
                    if kind == _TEXT:
                        top.values[name] = bytes(buf[vpos : vpos + length])
                    elif kind == _PIXEL:
                        top.pixel_data_offset, top.pixel_data_length = vpos, length
                        top.values["pixel_keyword"] = name
                    elif kind == _US:
                        if length >= 2:
                            top.values[name] = self.h.unpack_from(buf, vpos)[0]
                            if length != 2:  # each of these holds one value (VM 1)
                                top.values.setdefault("multi_valued", f"{_KEYWORDS[name]} holds {length // 2} values")
                    elif kind == _CHARSET:
                        raw = top.values[name] = bytes(buf[vpos : vpos + length])
                        problem = _charset_problem(vr, raw)
                        if problem:  # judged after the walk: the header values still get read
                            top.values["charset_problem"] = f"{problem} at offset {pos}"
                    else:
                        top.values["is_dicomdir"] = True
            if spans is not None and not (g & 1 and el >= 0x1000):  # private data: the gaps between spans
                spans((tag, pos, vpos, vpos + length))
            pos = vpos + length
        if in_undefined_item:
            raise self._cut(pos, end, "an item of undefined length")
        return pos

    def enter(self, tag: int, pos: int) -> None:
        """One sequence deeper; absurd depth is damage (and would exhaust the stack)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _Problem(
                "nesting_too_deep",
                f"sequence ({tag >> 16:04X},{tag & 0xFFFF:04X}) at offset {pos} is nested more than "
                f"{MAX_NESTING} levels deep",
            )

    def sequence(self, pos: int, end: int, tag: int) -> int:
        """Walk items of an undefined-length sequence; return offset after its delimiter."""
        self.enter(tag, pos)
        while True:
            itag, _, length, vpos = self.header(pos, end)
            if itag == SEQ_DELIM:
                self.depth -= 1
                return vpos
            pos = self.item(tag, pos, end, itag, length, vpos)

    def sequence_defined(self, pos: int, end: int, tag: int) -> None:
        """Walk the items of a sequence with a defined length."""
        self.enter(tag, pos)
        while pos < end:
            itag, _, length, vpos = self.header(pos, end)
            pos = self.item(tag, pos, end, itag, length, vpos)
        self.depth -= 1

    def item(self, tag: int, pos: int, end: int, itag: int, length: int, vpos: int) -> int:
        """Walk one item of sequence ``tag`` (its header read at ``pos``); return the offset after it."""
        if itag != ITEM:
            raise _Problem(
                "unparseable",
                f"expected an item in sequence ({tag >> 16:04X},{tag & 0xFFFF:04X}) at offset {pos}",
            )
        if length == UNDEFINED:
            return self.dataset(vpos, end, None, True)
        self.fits(itag, length, vpos, end)
        self.dataset(vpos, vpos + length, None, False)
        return vpos + length

    def fragments(self, pos: int, end: int) -> int:
        """Walk encapsulated pixel data fragments; return offset after the delimiter."""
        while True:
            itag, _, length, vpos = self.header(pos, end)
            if itag == SEQ_DELIM:
                return vpos
            if itag != ITEM:
                raise _Problem("unparseable", f"expected a pixel data fragment at offset {pos}")
            self.fits(itag, length, vpos, end)
            pos = vpos + length


def _plausible_pixel_length(values: dict[str, Any], length: int) -> bool:
    """Does a native PixelData length agree with Rows x Columns x ...?

    When it does, a length running past the end of the file means the file
    was cut (``truncated``); when it does not, the length field itself is bad.
    """
    rows, cols = values.get("rows"), values.get("columns")
    bits = values.get("bits_allocated")
    if not (rows and cols and bits):
        return True
    spp = values.get("samples_per_pixel") or 1
    try:
        frames = int(_ascii(values.get("number_of_frames", b"1")) or 1)
    except ValueError:
        frames = 1
    expected = (rows * cols * spp * frames * bits + 7) // 8
    return length in (expected, expected + 1)


def _charset_problem(vr: bytes | None, raw: bytes) -> str | None:
    """Why a SpecificCharacterSet cannot name a character set, or None.

    Every text value of the dataset is decoded through it, so a damaged one (a VR that is
    not CS, control bytes or non-ASCII inside the value) leaves names unreadable. An unknown
    but well-formed term (a typo such as ``ISO_IR100``) is left to the decoder's fallback.
    """
    if vr is not None and vr not in (b"CS", b"UN"):
        return f"SpecificCharacterSet with VR {vr.decode('ascii', 'replace')} instead of CS"
    text = raw.rstrip(b" \x00")
    if not text.isascii() or any(c < 0x20 or c == 0x7F for c in text):
        return f"SpecificCharacterSet {raw[:40]!r} holds bytes no character set term has"
    return None


def _uid_valid(uid: str) -> bool:
    """A UID as PS3.5 9.1 defines it: at most 64 characters, digits in dot-separated
    components, none empty, none with a leading zero."""
    if not uid or len(uid) > 64:
        return False
    for part in uid.split("."):
        if not part.isdigit() or not part.isascii() or (part[0] == "0" and len(part) > 1):
            return False
    return True


_TS_VERDICTS: dict[str, tuple[str, str] | None] = {}


def _check_transfer_syntax(ts: str) -> None:
    """A TransferSyntaxUID no reader can act on is damage, not a syntax to guess around."""
    if not _uid_valid(ts):
        raise _Problem("invalid_transfer_syntax", f"TransferSyntaxUID {ts!r} is not a valid UID")
    if ts.startswith(DICOM_ROOT) and ts not in STANDARD_SYNTAXES:
        raise _Problem("invalid_transfer_syntax",
                       f"TransferSyntaxUID {ts} is under the DICOM root but no transfer syntax the standard defines")


def _frames(raw: bytes | None) -> int:
    """NumberOfFrames as a count (1 when absent or empty); raises on an absurd value."""
    text = _ascii(raw or b"").split("\\")[0].strip()
    if not text:
        return 1
    try:
        n = int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            f = 0.5
        if not f.is_integer():
            raise _Problem("invalid_image_attributes", f"NumberOfFrames {text!r} is not a whole number") from None
        n = int(f)
    if n < 1:
        raise _Problem("invalid_image_attributes", f"NumberOfFrames {n}: an image has at least one frame")
    return n


#: Zero bytes after native pixel values are tolerated up to this many (see _check_pixels).
MAX_ZERO_PADDING = 1 << 20


def _check_pixels(ins: Inspection, ts: str | None, data: Buffer) -> None:
    """Can a reader decode this PixelData? Judged against the standard (PS3.3 C.7.6.3, PS3.5 8).

    The encoding of the pixel data must agree with the transfer syntax (fragments only
    under an encapsulated syntax), the attributes that say how to read it must be present
    and sane, and native pixel data must be exactly as long as they say (plus the one
    padding byte that makes an odd length even). One tolerance: a tail of zero bytes after
    the declared values (some writers pad to a block; pydicom and DCMTK read the declared
    frames and drop it, as with pydicom's own MR_small_padded.dcm) carries nothing to lose.
    """
    v = ins.values
    keyword = v.pop("pixel_keyword", None)
    if ins.pixel_data_offset is None or keyword is None:
        return
    if ts is not None:
        if ins.encapsulated and ts in NATIVE_SYNTAXES:
            raise _Problem("pixel_encoding_mismatch",
                           f"PixelData is encapsulated (compressed fragments) under the native transfer syntax {ts}: "
                           "no reader can decode it")
        if not ins.encapsulated and keyword == "PixelData" and ts in STANDARD_SYNTAXES and ts not in NATIVE_SYNTAXES:
            raise _Problem("pixel_encoding_mismatch",
                           f"PixelData is native (not fragments) under the encapsulated transfer syntax {ts}")
    # Type 1 attributes of the Image Pixel module (PS3.3 C.7.6.3) that say how to read the pixels.
    missing = [kw for kw, key in (("Rows", "rows"), ("Columns", "columns"), ("BitsAllocated", "bits_allocated"),
                                  ("SamplesPerPixel", "samples_per_pixel")) if v.get(key) is None]
    if not _ascii(v.get("photometric") or b""):
        missing.append("PhotometricInterpretation")
    if missing:
        raise _Problem("missing_image_attributes", f"{keyword} without {', '.join(missing)}: its size is unknown")
    rows, cols, bits, spp = v["rows"], v["columns"], v["bits_allocated"], v["samples_per_pixel"]
    multi = v.pop("multi_valued", None)
    if multi:
        raise _Problem("invalid_image_attributes", f"{multi}: one is expected, the image size is ambiguous")
    bad = []
    if not rows or not cols:
        bad.append(f"Rows x Columns {rows} x {cols}")
    if bits not in BITS_ALLOCATED or (keyword == "FloatPixelData" and bits != 32) or (
            keyword == "DoubleFloatPixelData" and bits != 64):
        bad.append(f"BitsAllocated {bits}")
    if spp not in SAMPLES_PER_PIXEL:
        bad.append(f"SamplesPerPixel {spp}")
    stored, high = v.get("bits_stored"), v.get("high_bit")
    if stored is not None and not 0 < stored <= bits:
        bad.append(f"BitsStored {stored} with BitsAllocated {bits}")
    if high is not None and high >= bits:
        bad.append(f"HighBit {high} with BitsAllocated {bits}")
    if bad:
        raise _Problem("invalid_image_attributes", f"{keyword} with {'; '.join(bad)}: no reader can decode it")
    frames = _frames(v.get("number_of_frames"))
    if ins.encapsulated:
        return
    photometric = _ascii(v.get("photometric") or b"")
    # YBR_*_422 native: two samples per pixel on average (Y for each, Cb and Cr for every other).
    samples = 2 if spp == 3 and photometric in ("YBR_FULL_422", "YBR_PARTIAL_422") else spp
    expected = (rows * cols * samples * frames * bits + 7) // 8
    length = ins.pixel_data_length or 0
    if length == expected or (expected & 1 and length == expected + 1):
        return
    start = ins.pixel_data_offset + expected
    zero_tail = expected < length <= expected + MAX_ZERO_PADDING and not bytes(
        data[start : start + length - expected]).strip(b"\0")
    if not zero_tail:
        raise _Problem(
            "pixel_length_mismatch",
            f"{keyword} holds {length} bytes; {rows} rows x {cols} columns x {samples} samples x {frames} frame(s) "
            f"x {bits} bits make {expected}",
        )


def _ascii(raw: bytes) -> str:
    return raw.decode("ascii", "replace").strip(" \x00")


def _uid_ok(raw: bytes | None) -> bool:
    return bool(raw and raw.strip(b" \x00"))


def _probe(
    buf: Buffer, pos: int, explicit: bool, big: bool, end: int, strict: bool = True
) -> bool:
    """Do the first elements at ``pos`` read sensibly in this encoding?

    ``strict`` (for data without a file meta) also wants the first tag in a
    low even group, as every real dataset starts; behind a file meta any
    first tag is accepted.
    """
    w = _Walker(buf, explicit, big, end)
    prev = -1
    for n in range(4):
        if pos >= end:
            return n > 0
        try:
            tag, vr, length, vpos = w.header(pos, end)
        except _Problem:
            return False
        group = tag >> 16
        if n == 0 and strict and not (group <= 0x0010 and group % 2 == 0):
            return False
        if tag <= prev or group == 0xFFFE:
            return False
        prev = tag
        if length == UNDEFINED:
            return n > 0 or vr in (b"SQ", b"UN", None)
        if vpos + length > end:
            return n > 0 and length < (1 << 28)
        if not explicit and length > 0x00FFFFFF and n == 0:
            return False
        pos = vpos + length
    return True


_ENCODINGS = (  # (explicit, big endian, transfer syntax)
    (True, False, EXPLICIT_VR_LE),
    (False, False, IMPLICIT_VR_LE),
    (True, True, EXPLICIT_VR_BE),
)


def _detect(
    buf: Buffer, pos: int, end: int, strict: bool = True
) -> tuple[bool, bool, str] | None:
    for explicit, big, ts in _ENCODINGS:
        if _probe(buf, pos, explicit, big, end, strict):
            return explicit, big, ts
    return None


def _syntax_encoding(ts: str) -> tuple[bool, bool]:
    if ts == IMPLICIT_VR_LE:
        return False, False
    if ts == EXPLICIT_VR_BE:
        return True, True
    return True, False


_U16 = struct.Struct("<H").unpack_from

#: A deflated dataset may inflate to INFLATE_FLOOR bytes, or to INFLATE_RATIO times its
#: compressed size when that is more, and never beyond INFLATE_CAP; past that it is
#: ``corrupt`` (``inflate_limit``). Real deflated objects (reports, small images) stay far
#: below; a decompression bomb (1 MB that inflates to 1 GB) is stopped at the limit, so a
#: worker never holds more than that of one file.
INFLATE_FLOOR = 64 << 20
INFLATE_RATIO = 100
INFLATE_CAP = 1 << 30
_INFLATE_CHUNK = 1 << 20


def _inflate(buf: Buffer, pos: int, n: int) -> bytearray:
    """Inflate the deflated dataset at ``pos`` in bounded chunks, checking the limit as it grows."""
    limit = min(INFLATE_CAP, max(INFLATE_FLOOR, INFLATE_RATIO * (n - pos)))
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    i = pos
    try:
        while not d.eof:
            if d.unconsumed_tail:
                data = d.unconsumed_tail
            elif i < n:
                data = bytes(buf[i : i + _INFLATE_CHUNK])
                i += len(data)
            else:
                data = b""  # no input left: whatever zlib still holds comes out now
            piece = d.decompress(data, _INFLATE_CHUNK)
            if not piece and not data:
                break
            out += piece
            if len(out) > limit:
                raise _Problem(
                    "inflate_limit",
                    f"the deflated dataset ({n - pos} bytes) inflates past {limit} bytes: "
                    f"more than {INFLATE_RATIO} times its size (a decompression bomb?)",
                )
    except zlib.error as e:
        raise _Problem("unparseable", f"deflated dataset does not inflate: {e}") from e
    if not d.eof:
        raise _Problem("truncated", "deflated dataset stream ends early")
    return out


#: The VR of each file meta element (PS3.10 7.1): an explicit meta that says otherwise is damaged.
_META_VRS = {
    0x00020000: b"UL", 0x00020001: b"OB", 0x00020002: b"UI", 0x00020003: b"UI", 0x00020010: b"UI",
    0x00020012: b"UI", 0x00020013: b"SH", 0x00020016: b"AE", 0x00020017: b"AE", 0x00020018: b"AE",
    0x00020026: b"UR", 0x00020027: b"UR", 0x00020028: b"UR", 0x00020031: b"OB", 0x00020032: b"UR",
    0x00020033: b"LO", 0x00020035: b"UI", 0x00020100: b"UI", 0x00020102: b"OB",
}


def _read_meta(buf: Buffer, pos: int, end: int, ins: Inspection) -> int:
    """Walk the group 0002 file meta; return the offset where the dataset starts.

    A meta element whose VR is not the standard's, or whose length cannot fit its VR, is
    recorded in ``values["meta_problem"]`` and judged once the dataset is walked: a damaged
    meta length can swallow the TransferSyntaxUID and leave the encoding to a guess.
    """
    explicit = True
    # A few writers encode the meta in implicit VR; read it as they wrote it.
    if end >= pos + 8 and bytes(buf[pos + 4 : pos + 6]) not in VALID_VRS:
        explicit = False
    w = _Walker(buf, explicit, False, end)
    while pos < end:
        if pos + 2 <= end and _U16(buf, pos)[0] != 0x0002:
            break
        tag, vr, length, vpos = w.header(pos, end)
        if vpos + length > end:
            w.fits(tag, length, vpos, end, length < 0x10000)  # raises
        want = _META_VRS.get(tag)
        if "meta_problem" not in ins.values:
            if vr is not None and want is not None and vr != want:
                ins.values["meta_problem"] = ("unparseable", f"file meta element ({tag >> 16:04X},{tag & 0xFFFF:04X}) "
                                              f"at offset {pos} has VR {vr.decode()}, the standard's is {want.decode()}")
            elif tag == 0x00020000 and length != 4:  # one UL, in either VR encoding
                ins.values["meta_problem"] = ("invalid_vr_length", f"file meta group length of {length} bytes "
                                              f"at offset {pos}: a UL holds 4")
            elif (vr or want) in VR_SIZES and length % VR_SIZES[vr or want or b""]:
                ins.values["meta_problem"] = ("invalid_vr_length", w.bad_length(tag, vr or want or b"", length, pos).detail)
        if tag == 0x00020010:
            ins.transfer_syntax_uid = _ascii(bytes(buf[vpos : vpos + length])) or None
        elif tag == 0x00020002:
            ins.meta_sop_class_uid = _ascii(bytes(buf[vpos : vpos + length])) or None
        elif tag == 0x00020003:
            ins.meta_sop_instance_uid = _ascii(bytes(buf[vpos : vpos + length])) or None
        pos = vpos + length
    return pos


def _decode_text(values: dict[str, Any]) -> None:
    """Turn raw attribute bytes into strings, padding stripped."""
    charset_raw = values.pop("specific_character_set", None)
    encodings: list[str] | None = None
    for key, raw in values.items():  # only values change: iterating the dict itself is safe
        if raw.__class__ is not bytes:
            continue
        if key not in CHARSET_COLUMNS or raw.isascii():
            # latin-1 maps bytes to the same code points: stripping first is the same and cheaper
            values[key] = raw.strip(b" \x00").decode("latin-1") or None
            continue
        if encodings is None:
            from pydicom.charset import convert_encodings

            names = [s.strip() for s in _ascii(charset_raw or b"").split("\\")]
            try:
                encodings = convert_encodings(names or [""])
            except Exception:  # an unknown charset must not stop the scan
                encodings = ["iso8859"]
        try:
            from pydicom.charset import decode_bytes

            text = decode_bytes(raw, encodings, {0x5C, 0x5E, 0x3D})
        except Exception:
            text = raw.decode("latin-1")
        text = text.strip(" \x00")
        values[key] = text if text else None
    for key in ("series_number", "instance_number", "number_of_frames"):
        v = values.get(key)
        if v is not None:
            try:
                values[key] = int(v.split("\\")[0])
            except ValueError:
                values[key] = None


_ZERO_BLOCK = bytes(BLOCK)


def find_lost_block(buf: Buffer) -> int | None:
    """Return the offset of a zero-filled lost block, or None.

    The signature of a block lost on tape or jukebox and zero-filled by the
    restore: a run of at least 4096 zero bytes that starts exactly on a
    4096-byte boundary (the byte before is not zero) and ends on a boundary or
    at the end of the file. Natural zero runs start anywhere.

    Only the two bytes around each boundary decide whether a block can start
    such a run, so they are gathered with strided slices (C loops, a few bytes
    per 4 KB) and only the rare candidates are compared in full: no numpy,
    and about a microsecond per megabyte of noise.
    """
    n = len(buf)
    full = n // BLOCK
    if full < 2:
        return None
    if isinstance(buf, memoryview):
        buf = buf.obj if isinstance(buf.obj, (bytes, mmap.mmap)) and len(buf.obj) == n else bytes(buf)
    # firsts[i]: the first byte of block i + 1; lasts[i]: the byte before it.
    # Block 0 starts the file: there is no byte before it.
    firsts = bytes(buf[BLOCK : full * BLOCK : BLOCK])
    lasts = bytes(buf[BLOCK - 1 : full * BLOCK - 1 : BLOCK])
    i = firsts.find(0)
    while i >= 0:
        start = (i + 1) * BLOCK
        if lasts[i] and buf[start : start + BLOCK] == _ZERO_BLOCK:
            end = _zero_run_end(buf, start + BLOCK, n)
            if end == n or end % BLOCK == 0:
                return start  # ends at the end of the file or exactly on a boundary
        i = firsts.find(0, i + 1)
    return None


def _zero_run_end(buf: bytes | bytearray | mmap.mmap, pos: int, n: int) -> int:
    """The offset of the first non-zero byte at or after ``pos`` (``n`` if none)."""
    while pos + BLOCK <= n and buf[pos : pos + BLOCK] == _ZERO_BLOCK:
        pos += BLOCK
    rest = buf[pos : pos + BLOCK]
    return pos + len(rest) - len(rest.lstrip(b"\0"))


def inspect_bytes(buf: Buffer) -> Inspection:
    """Classify one file's content. Never raises on bad content."""
    ins = Inspection()
    n = len(buf)
    try:
        _inspect(buf, n, ins)
    except _Problem as p:
        ins.status, ins.reason, ins.detail = "corrupt", p.reason, p.detail
    except (struct.error, IndexError, ValueError, zlib.error) as e:  # defensive: never crash
        ins.status, ins.reason, ins.detail = "corrupt", "unparseable", f"{type(e).__name__}: {e}"
    except RecursionError:  # MAX_NESTING keeps the walk well inside the stack: a safety net
        ins.status, ins.reason, ins.detail = "corrupt", "nesting_too_deep", "nesting exhausted the parser's stack"
    if ins.status == "corrupt" and ins.values:
        try:
            _decode_text(ins.values)
        except Exception:
            ins.values = {}
    return ins


def _find_shifted_dataset(buf: Buffer, end: int, ins: Inspection) -> None:
    """A raw dataset behind a few stray bytes is damaged DICOM, not 'not DICOM'.

    Raises the finding (with the header values read from the real start) when
    a dataset starting with group 0008 is found within the first 16 bytes.
    """
    for shift in range(1, 17):
        for explicit, big, ts in _ENCODINGS:
            g = struct.unpack_from(">H" if big else "<H", buf, shift)[0] if end > shift + 2 else 0
            if g == 0x0008 and _probe(buf, shift, explicit, big, end):
                try:
                    _Walker(buf, explicit, big, end).dataset(shift, end, ins, False)
                except _Problem:
                    pass
                ins.transfer_syntax_uid, ins.dataset_offset = ts, shift
                raise _Problem(
                    "unparseable",
                    f"{shift} stray byte(s) before a raw {ts} dataset: a reader starting at byte 0 reads garbage",
                )


def _inspect(buf: Buffer, n: int, ins: Inspection) -> None:
    if n == 0:
        ins.status, ins.reason, ins.detail = "corrupt", "empty", "zero-length file"
        return
    head = bytes(buf[:132])
    pos = 0
    if n >= 132 and head[128:132] == b"DICM":
        pos = 132
    elif head[:4] == b"DICM":
        pos = 4
    elif n < 132 and n >= 128 and not head[:128].strip(b"\x00"):
        raise _Problem("truncated", f"file ends inside the preamble ({n} bytes)")
    if pos:
        ins.has_meta = True
        pos = _read_meta(buf, pos, n, ins)
    ins.dataset_offset = pos
    if pos >= n:
        if ins.has_meta:
            if ins.meta_sop_class_uid == DICOMDIR_SOP_CLASS:
                raise _Problem("truncated", "DICOMDIR ends after its file meta")
            raise _Problem("truncated", "file ends after its file meta: no dataset")
        raise _Problem("truncated", "no dataset")

    data: Buffer = buf
    end = n
    ts = ins.transfer_syntax_uid
    # Judged once the dataset is walked, so that a corrupt copy keeps its header values.
    bad_ts: tuple[str, str] | None = None
    if ts is not None:
        if ts in _TS_VERDICTS:  # an archive holds few syntaxes: judge each once
            bad_ts = _TS_VERDICTS[ts]
        else:
            try:
                _check_transfer_syntax(ts)
            except _Problem as p:
                bad_ts = (p.reason, p.detail)
            if len(_TS_VERDICTS) < 256:
                _TS_VERDICTS[ts] = bad_ts
    if ts == DEFLATED_LE:
        inflated = _inflate(buf, pos, n)
        data, pos, end = inflated, 0, len(inflated)

    strict = not ins.has_meta
    detected = _detect(data, pos, end, strict)
    if detected is None and not ins.has_meta:
        _find_shifted_dataset(data, end, ins)  # raises if found
    if ts is not None and ts != DEFLATED_LE:
        explicit, big = _syntax_encoding(ts)
        # The detected encoding already passed this very probe: no need to run it twice.
        if (detected is None or detected[:2] != (explicit, big)) and not _probe(data, pos, explicit, big, end, strict):
            if detected is None:
                ins.status, ins.reason = "not_dicom" if not ins.has_meta else "corrupt", None
                if ins.has_meta:
                    raise _Problem("unparseable", "the data after the file meta is not a DICOM dataset")
                return
            explicit, big, ins.detected_syntax = detected
    elif ts == DEFLATED_LE:
        explicit, big = True, False
        if detected is None:
            raise _Problem("unparseable", "the inflated dataset is not a DICOM dataset")
    else:
        if detected is None:
            if ins.has_meta:
                raise _Problem("unparseable", "the data after the file meta is not a DICOM dataset")
            ins.status, ins.reason, ins.detail = "not_dicom", None, None
            return
        explicit, big, detected_ts = detected
        ins.transfer_syntax_uid = detected_ts
        if ins.has_meta:
            ins.detected_syntax = detected_ts  # meta without a TransferSyntaxUID

    walker = _Walker(data, explicit, big, end)
    try:
        walker.dataset(pos, end, ins, False)
    except _Problem as p:
        if ins.meta_sop_class_uid != DICOMDIR_SOP_CLASS:
            raise
        ins.status, ins.reason, ins.detail = "dicomdir", p.reason, p.detail  # damaged, never sent anyway
    if ins.values.get("is_dicomdir") or ins.meta_sop_class_uid == DICOMDIR_SOP_CLASS:
        ins.values.pop("is_dicomdir", None)
        _decode_text(ins.values)
        ins.status = "dicomdir"
        return
    meta_problem = ins.values.pop("meta_problem", None)
    if meta_problem:
        raise _Problem(*meta_problem)
    if bad_ts is not None:
        raise _Problem(*bad_ts)
    charset_problem = ins.values.pop("charset_problem", None)
    if charset_problem:
        raise _Problem("invalid_character_set", charset_problem)
    if ins.detected_syntax and ins.transfer_syntax_uid and ins.detected_syntax != ins.transfer_syntax_uid:
        raise _Problem(
            "encoding_mismatch",
            f"file meta says {ins.transfer_syntax_uid} but the dataset is encoded as {ins.detected_syntax}",
        )
    for key, reason in (
        ("sop_instance_uid", "missing_sop_instance_uid"),
        ("sop_class_uid", "missing_sop_class_uid"),
        ("study_instance_uid", "missing_study_instance_uid"),
    ):
        if not _uid_ok(ins.values.get(key)):
            raise _Problem(reason, f"no {key.replace('_', ' ')} in the dataset")
    _check_pixels(ins, ins.transfer_syntax_uid, data)
    _decode_text(ins.values)
    if ATTR_DIGESTS:
        ins.attr_digest, ins.attr_keys = attr_digest(data, ins.spans, pos, end, big)
    lost = find_lost_block(buf)
    if lost is not None:
        ins.status, ins.reason = "suspect", "zero_block"
        ins.detail = f"zero-filled block at offset {lost}: a block lost on the source medium?"


_BIG_ENDIAN = sys.byteorder == "big"


def attr_digest(data: Buffer, spans: list[tuple[int, int, int, int]], start: int, end: int,
                big: bool = False) -> tuple[bytes, bytes]:
    """A compact per-attribute digest of a dataset (``data[start:end]``): which attribute holds what.

    Returns ``(digest, keys)``. ``keys``: the attributes, in tag order, as uint32 little-endian
    (the same for most files of a series: the index keeps each distinct list once, table
    ``attr_tagsets``). ``digest``: the xxh3-64 of ``keys`` (little-endian: the list's id), then a
    16-bit hash of each attribute's value bytes (uint16 little-endian), 2 bytes per attribute. A
    later rescan of a changed file compares the two digests and names the attributes that differ,
    also those the index does not keep (a hash that differs proves the value differs; a changed
    value keeps its 16-bit hash once in 65,536 times and is then not named).

    Keys are the top-level tags; the private data elements of a group (gggg,xxyy with odd gggg and
    xx >= 0x10, which the walk does not list in ``spans``) are one attribute (gggg,FFFF), hashed
    over their encoded bytes. Group lengths (gggg,0000) are digested too; the comparison leaves
    them out (they follow from the rest).
    A sequence is hashed whole (its items' encoded bytes); otherwise the value bytes only, so
    explicit or implicit VR does not count. One hash per attribute: the cost of a scan grows
    with the number of attributes.
    """
    keys: list[int] = []
    hashes: list[int] = []
    key_add, hash_add = keys.append, hashes.append
    xxh32 = xxhash.xxh32_intdigest
    order: Literal["big", "little"] = "big" if big else "little"
    prev = start
    for tag, at, a, b in spans:  # the scan's cost: keep this loop lean
        if at != prev:  # private data elements in between: one attribute per group
            key_add(int.from_bytes(data[prev:prev + 2], order) << 16 | 0xFFFF)
            hash_add(xxh32(data[prev:at]))
        prev = b
        key_add(tag)
        if b - a < 4096:
            hash_add(xxh32(data[a:b]))
        else:  # pixel data and other bulk values: xxh3 through a view, no copy
            with memoryview(data) as view:
                hash_add(xxhash.xxh3_64_intdigest(view[a:b]) & 0xFFFFFFFF)
    if prev < end:
        key_add(int.from_bytes(data[prev:prev + 2], order) << 16 | 0xFFFF)
        hash_add(xxh32(data[prev:end]))
    packed_keys = array("I", keys)
    packed = array("I", hashes)
    if _BIG_ENDIAN:
        packed_keys.byteswap()
        packed.byteswap()
    tags = packed_keys.tobytes()
    low = array("H", packed.tobytes())[0::2]  # the low 16 bits of each hash (little-endian)
    return xxhash.xxh3_64_digest(tags)[::-1] + low.tobytes(), tags
