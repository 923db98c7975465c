"""Read one file once: hash and parse the same bytes. The scan's worker processes import only this.

Kept free of DuckDB, numpy, pydicom and the CLI so that a worker process
stays small. A result is a plain tuple in :data:`ROW_COLUMNS` order:
cheap to pickle between processes and to turn into the column lists the
index writer binds.
"""

from __future__ import annotations

import mmap
import os
import stat
from typing import Any

import xxhash

from pacscopy.scan.parse import TEXT_TAGS, US_TAGS, inspect_bytes

#: Header columns filled from the dataset's attributes.
VALUE_COLUMNS = tuple(sorted(set(TEXT_TAGS.values()) | set(US_TAGS.values()) - {"samples_per_pixel", "bits_allocated"}))
#: The fields of one result row, in order; the index writer binds each as a column.
ROW_COLUMNS = (
    "path", "path_bytes", "size", "mtime_us", "mtime_ns", "xxh3", "dataset_xxh3", "status",
    "reason", "detail", "has_meta", "dataset_offset", "transfer_syntax_uid", "detected_syntax",
    "meta_sop_class_uid", "meta_sop_instance_uid",
    *VALUE_COLUMNS,
    "pixel_data_offset", "pixel_data_length", "encapsulated", "attr_digest", "attr_keys",
)
#: Fields of a row that are not ``files`` columns (the index writer keeps them elsewhere).
SIDE_COLUMNS = ("attr_digest", "attr_keys")
#: Files above this size are mapped rather than read: no copy of a large file in memory.
MMAP_ABOVE = 1 << 20
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux: map the whole file in one go, not page by page

#: One result row, in :data:`ROW_COLUMNS` order.
Row = tuple[Any, ...]


def display_path(p: bytes) -> str:
    """A path as text for the index key: UTF-8, other bytes as ``\\xNN``.

    ``path_bytes`` keeps the exact bytes; this form is for people and SQL.
    """
    return p.decode("utf-8", "backslashreplace")


def entry_row(path: bytes, size: int | None, mtime_ns: int | None, status: str,
              reason: str | None = None, detail: str | None = None) -> Row:
    """A row for a file that is not read (or could not be): no hashes, no header."""
    mtime_us = None if mtime_ns is None else mtime_ns // 1000
    return (display_path(path), path, size, mtime_us, mtime_ns, None, None, status, reason, detail,
            *_NO_CONTENT)


_NO_CONTENT = (None,) * (len(ROW_COLUMNS) - 10)


def read_row(path: bytes) -> Row:
    """Read one file once: hash and parse the same bytes. Never raises on what it finds."""
    got = load(path)
    return got if isinstance(got, tuple) else got.row()


class Loaded:
    """A file's bytes in memory (or mapped), read by :func:`load`, not yet inspected."""

    __slots__ = ("path", "size", "mtime_ns", "data")

    def __init__(self, path: bytes, size: int, mtime_ns: int, data: bytes | mmap.mmap) -> None:
        self.path, self.size, self.mtime_ns, self.data = path, size, mtime_ns, data

    def row(self) -> Row:
        """Hash and parse the bytes (CPU only, no I/O), then let go of them."""
        try:
            return _inspect(self.path, self.mtime_ns, self.data)
        except Exception as e:
            # A bug met on this file's bytes (the parser never raises on bad content by design):
            # the file gets a row that names the error and is never sent, the rest of the batch
            # and the scan go on. RecursionError and MemoryError included.
            return entry_row(self.path, self.size, self.mtime_ns, "corrupt", "parser_error",
                             f"{type(e).__name__} while parsing: {str(e)[:200]} (a pacscopy bug: please report it)")
        finally:
            if isinstance(self.data, mmap.mmap):
                self.data.close()
            self.data = b""


def load(path: bytes) -> Loaded | Row:
    """The I/O half of :func:`read_row`: the whole file in one large read, or mapped.

    Returns the row at once for a file that cannot be read or is no longer a
    regular file. Safe to call from threads: the reads release the GIL.
    """
    try:
        # O_NONBLOCK: if the entry became a FIFO since the walk, open must not hang.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        return entry_row(path, None, None, "unreadable", "os_error", f"{e.strerror} (errno {e.errno})")
    size = mtime_ns = None
    try:
        st = os.fstat(fd)
        size, mtime_ns = st.st_size, st.st_mtime_ns
        if not stat.S_ISREG(st.st_mode):
            return entry_row(path, size, mtime_ns, "skipped", "not_regular", "changed into a non-regular file")
        if size > MMAP_ABOVE:
            return Loaded(path, size, mtime_ns, mmap.mmap(fd, 0, flags=mmap.MAP_SHARED | _MAP_POPULATE,
                                                          prot=mmap.PROT_READ))
        # os.read rather than a file object: ~4 us less per file. Read to EOF, as
        # the file may have grown since fstat (and a short read need not be the end).
        data = os.read(fd, size + 1)
        while more := os.read(fd, 1 << 16):
            data += more
        return Loaded(path, size, mtime_ns, data)
    except OSError as e:
        return entry_row(path, size, mtime_ns, "unreadable", "os_error", f"{e.strerror} (errno {e.errno})")
    except ValueError as e:  # mmap: the file shrank to nothing since fstat
        return entry_row(path, size, mtime_ns, "unreadable", "os_error", f"changed while being read: {e}")
    finally:
        os.close(fd)


def _inspect(path: bytes, mtime_ns: int, data: bytes | mmap.mmap) -> Row:
    xxh3 = xxhash.xxh3_128_hexdigest(data)
    ins = inspect_bytes(data)
    off = ins.dataset_offset
    dataset_xxh3 = None
    if off is not None and ins.status in ("ok", "suspect", "corrupt"):
        if off == 0:
            dataset_xxh3 = xxh3
        else:
            with memoryview(data) as view:  # no copy of the dataset bytes
                dataset_xxh3 = xxhash.xxh3_128_hexdigest(view[off:])
    values = ins.values
    return (
        display_path(path), path, len(data), mtime_ns // 1000, mtime_ns, xxh3, dataset_xxh3, ins.status,
        ins.reason, ins.detail, ins.has_meta, off, ins.transfer_syntax_uid, ins.detected_syntax,
        ins.meta_sop_class_uid, ins.meta_sop_instance_uid,
        *map(values.get, VALUE_COLUMNS),
        ins.pixel_data_offset, ins.pixel_data_length, ins.encapsulated, ins.attr_digest, ins.attr_keys,
    )


def read_and_inspect(path: bytes) -> dict[str, Any]:
    """:func:`read_row` as a dict by column name (for tests and callers outside the scan)."""
    return dict(zip(ROW_COLUMNS, read_row(path)))


def read_rows(paths: list[bytes]) -> list[Row]:
    return [read_row(p) for p in paths]
