"""Read one file once: hash and parse the same bytes. The scan's worker processes import only this.

Kept free of DuckDB and the CLI so that a worker process starts fast and small.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import xxhash

from pacscopy.dicomparse import TEXT_TAGS, US_TAGS, inspect_bytes

#: Header columns filled from the dataset's attributes.
VALUE_COLUMNS = tuple(sorted(set(TEXT_TAGS.values()) | set(US_TAGS.values()) - {"samples_per_pixel", "bits_allocated"}))
#: Files above this size are mapped rather than read: no copy of a large file in memory.
MMAP_ABOVE = 1 << 20


def read_and_inspect(path: bytes) -> dict[str, Any]:
    """Read one file once: hash and parse the same bytes. Never raises."""
    row: dict[str, Any] = {"path_bytes": path}
    try:
        # O_NONBLOCK: if the entry became a FIFO since the walk, open must not hang.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        row.update(status="unreadable", reason="os_error", detail=f"{e.strerror} (errno {e.errno})")
        return row
    try:
        st = os.fstat(fd)
        row["size"], row["mtime_ns"] = st.st_size, st.st_mtime_ns
        if not stat.S_ISREG(st.st_mode):
            row.update(status="skipped", reason="not_regular", detail="changed into a non-regular file")
            return row
        with os.fdopen(fd, "rb", closefd=False) as f:
            if st.st_size > MMAP_ABOVE:
                import mmap

                with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
                    return _inspect_into(row, memoryview(mm))
            data = f.read()
        return _inspect_into(row, data)
    except OSError as e:
        row.update(status="unreadable", reason="os_error", detail=f"{e.strerror} (errno {e.errno})")
        return row
    finally:
        os.close(fd)


def _inspect_into(row: dict[str, Any], data: bytes | memoryview) -> dict[str, Any]:
    row["size"] = len(data)
    row["xxh3"] = xxhash.xxh3_128_hexdigest(data)
    ins = inspect_bytes(data)
    row.update(
        status=ins.status, reason=ins.reason, detail=ins.detail, has_meta=ins.has_meta,
        dataset_offset=ins.dataset_offset, transfer_syntax_uid=ins.transfer_syntax_uid,
        detected_syntax=ins.detected_syntax, meta_sop_class_uid=ins.meta_sop_class_uid,
        meta_sop_instance_uid=ins.meta_sop_instance_uid, pixel_data_offset=ins.pixel_data_offset,
        pixel_data_length=ins.pixel_data_length, encapsulated=ins.encapsulated,
    )
    for key in VALUE_COLUMNS:
        row[key] = ins.values.get(key)
    off = ins.dataset_offset
    if off is not None and ins.status in ("ok", "suspect", "corrupt"):
        row["dataset_xxh3"] = row["xxh3"] if off == 0 else xxhash.xxh3_128_hexdigest(memoryview(data)[off:])
    if isinstance(data, memoryview):
        data.release()
    return row


def inspect_many(paths: list[bytes]) -> list[dict[str, Any]]:
    return [read_and_inspect(p) for p in paths]
