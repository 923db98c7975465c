"""Encode and decode datasets for rewriting on the way out (PatientID mapping, transcoding)."""

from __future__ import annotations

from io import BytesIO
from typing import Any


def encode_dataset(ds: Any, transfer_syntax: str) -> bytes:
    """Encode a pydicom dataset (no meta) in ``transfer_syntax``."""
    from pydicom.uid import UID
    from pynetdicom.dsutils import encode

    ts = UID(transfer_syntax)
    out = encode(ds, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
    if out is None:
        raise ValueError(f"cannot encode the dataset in {transfer_syntax}")
    return out


def read_dataset(data: bytes, offset: int, transfer_syntax: str) -> Any:
    """Decode a file's bytes (with or without meta) for rewriting; the caller has already read them."""
    from pydicom import dcmread
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset as _rd
    from pydicom.uid import UID

    if offset:
        return dcmread(BytesIO(data), force=True)
    ts = UID(transfer_syntax)
    ds = _rd(BytesIO(data), ts.is_implicit_VR, ts.is_little_endian)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    return ds
