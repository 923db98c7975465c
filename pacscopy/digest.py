"""The canonical content digest of a DICOM dataset: equal for two encodings of the same content.

Used by check (duplicate copies of an instance that differ in their bytes: re-encoded,
or really different?) and by verify (the copy retrieved back from the target against
the source). Every element in tag order except the file meta, group lengths and
padding; values normalised so that their encoding does not matter; pixel data
decoded where pydicom can, else compared as encoded bytes (``note`` says so).
"""

from __future__ import annotations

import os
from typing import Any

import xxhash


def normalise(value: Any) -> Any:
    """A value in a form that does not depend on its encoding."""
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence

    if isinstance(value, Sequence):
        return tuple(_dataset_digest(item)[0] for item in value)
    if isinstance(value, (MultiValue, list, tuple)):
        return tuple(normalise(v) for v in value)
    if isinstance(value, bytes):
        stripped = value.rstrip(b"\x00 ")
        if stripped.isascii() and all(32 <= c < 127 or c in (9, 10, 13) for c in stripped):
            return stripped.decode("ascii").strip()  # a private text element read as UN
        return value
    if isinstance(value, float):
        return repr(value)
    if value is None:
        return ""
    text = str(value)
    return text.rstrip("\x00 ").strip()


def _dataset_digest(ds: Any) -> tuple[str, dict[str, str]]:
    elements: dict[str, str] = {}
    # how the values were read (None for datasets built in memory: native little endian)
    big_endian = getattr(ds, "original_encoding", (None, None))[1] is False
    for elem in ds:
        # Not content: the file meta, group lengths (they change with the VR encoding),
        # trailing padding, and the pixel data (compared separately, decoded).
        if elem.tag.group == 0x0002 or elem.tag.element == 0x0000 or elem.tag in (0x7FE00010, 0xFFFCFFFC):
            continue
        try:
            v = elem.value
        except Exception as e:  # a value pydicom cannot convert still has an identity
            v = f"<unreadable: {e}>"
        key = elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"
        if isinstance(v, bytes) and elem.VR in ("OW", "OF", "OD", "OL") and big_endian:
            import numpy as np

            width = {"OW": 2, "OF": 4, "OD": 8, "OL": 4}[elem.VR]
            v = np.frombuffer(v, dtype=f">u{width}").astype(f"<u{width}").tobytes()
        elements[key] = xxhash.xxh3_64_hexdigest(repr(normalise(v)).encode("utf-8", "surrogatepass"))
    digest = xxhash.xxh3_128_hexdigest(repr(sorted(elements.items())).encode())
    return digest, elements


def content_digest(path: bytes) -> dict[str, Any]:
    """Canonical hashes of one file: every element in tag order (group 0002 excluded), pixels decoded if possible."""
    import warnings

    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(os.fsdecode(path), force=True)
            return digest_dataset(ds)
    except Exception as e:
        return {"content_hash": None, "pixel_hash": None, "pixel_decoded": False, "keys": [], "values": [],
                "note": f"cannot read for comparison: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"}


def digest_dataset(ds: Any) -> dict[str, Any]:
    """Canonical hashes of a dataset, independent of its encoding.

    ``keys``/``values`` are the attribute keywords and the hashes of their
    normalised values (``PixelData``: of the decoded pixels where pydicom has
    a decoder, else of the encoded bytes, and ``note`` says so).
    """
    import warnings

    out: dict[str, Any] = {"content_hash": None, "pixel_hash": None, "pixel_decoded": False,
                           "note": None, "keys": [], "values": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        digest, elements = _dataset_digest(ds)
        if "PixelData" in ds:
            meta = getattr(ds, "file_meta", None)
            ts = meta.get("TransferSyntaxUID") if meta is not None else None
            if ts is None:
                # a raw dataset without meta: the encoding pydicom read it in is its syntax
                from pydicom.dataset import FileMetaDataset
                from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

                implicit, little = ds.original_encoding
                ts = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
                if meta is None:
                    ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = ts
            try:
                arr = ds.pixel_array
                out["pixel_hash"] = xxhash.xxh3_128_hexdigest(
                    f"{arr.shape}|{arr.dtype.str.lstrip('<>=|')}".encode() + arr.astype(arr.dtype.newbyteorder("<")).tobytes()
                )
                out["pixel_decoded"] = True
            except Exception as e:
                out["pixel_hash"] = xxhash.xxh3_128_hexdigest(ds.PixelData)
                name = getattr(ts, "name", ts) or "unknown syntax"
                out["note"] = f"pixel data of {name} not decoded ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
            elements["PixelData"] = out["pixel_hash"]
            digest = xxhash.xxh3_128_hexdigest(repr(sorted(elements.items())).encode())
    out["content_hash"] = digest
    out["keys"], out["values"] = list(elements), list(elements.values())
    return out
