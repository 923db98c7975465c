"""The files indexed under a scan root, held compactly: what an incremental rescan compares its walk with.

A rescan asks, for each entry it walks, whether the index knows its path, with which size, mtime
and status, and under which row id (a changed file's row is replaced by row id, a vanished one
marked missing by row id: no pass over ``files.path`` per write). A Python dict of the root's
paths cost ~0.45 KB per file (measured at 5 M files: 2.3 GB); :class:`Known` keeps ~19 bytes per
file in numpy arrays and no path at all:

- ``key``, sorted: the high bits of an xxh3-128 of the path, its low bits replaced by the file's
  position in the other arrays (so that sorting ``key`` in place sorts nothing else: no
  permutation, no second copy at any moment);
- per position: ``chk`` (16 more bits of the path's hash: a path is known if its key's high bits
  and its ``chk`` match, 54 bits or more in all below 2**26 files), ``state`` (a 64-bit mix of size
  and mtime_ns), ``code`` (the status class, and whether the walk found it) and the row id
  (:class:`RowIds`: runs of consecutive row ids, a root's files being mostly written together).

A new path taken for a known one (its 54 bits equal, ~3e-9 per new file at 50 M known) is
written as a change: the writer finds no row of that path at the row id and inserts it (the
known path it was taken for is not marked missing by this scan, if it vanished).

Loading reads the root's rows one stretch of row ids at a time (:data:`LOAD_ROWS`), so only the
stretch's paths are Python strings at any moment. Row ids may move while the scan runs: a
checkpoint compacts row groups of which many rows were deleted (DuckDB 2.0 does so with or without
an index on the table). So the writer checks the path at each row id it replaces and falls back to
the path for any that moved, and what marks the vanished files missing checks each row id against
its path's hash and finds a moved one again by it (:class:`Gone`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from xxhash import xxh3_128_digest

from pacscopy.index import run

if TYPE_CHECKING:
    import duckdb

#: Rows of ``files`` (by row id: two of DuckDB's row groups) read per query while loading: their paths are
#: Python strings meanwhile (5 M files under one root: 431 MB peak RSS; 521 MB with 524,288 rows per query).
LOAD_ROWS = 2 * 122_880
#: Known files from which lookups go through buckets of keys instead of a binary search.
BUCKETS_FROM = 1 << 16
#: ``code`` values (ops/scan/known_files): a status whose file is read again only when it changed
#: (ok, corrupt, not_dicom, ...), skipped, unreadable, missing; VISITED is set once the walk found it.
READ, SKIPPED, UNREADABLE, MISSING = 0, 1, 2, 3
VISITED = 0x80
#: The code of a walked entry that is not read (``_Entry.status``).
ENTRY_CODES = {"skipped": SKIPPED, "unreadable": UNREADABLE}

_U64 = np.uint64


def path_hashes(keys: Sequence[str]) -> np.ndarray:
    """xxh3-128 of each path (its UTF-8 bytes), as rows of two uint64 words."""
    raw = b"".join([xxh3_128_digest(k.encode()) for k in keys])
    return np.frombuffer(raw, dtype="<u8").reshape(-1, 2)


def path_marks(keys: Sequence[str], mask: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """What :class:`Known` keeps of each path's hash: its first word with the low ``mask`` bits
    cleared (the rest of a key holds the position) and 16 bits of its second word."""
    h = path_hashes(keys)
    return h[:, 0] & ~mask, h[:, 1].astype(np.uint16)


def file_state(size: np.ndarray, mtime_ns: np.ndarray) -> np.ndarray:
    """A 64-bit mix of (size, mtime_ns) (splitmix64's finaliser): equal for a file that did not change."""
    x = size.astype(np.int64).view(_U64) * _U64(0x9E3779B97F4A7C15)
    x ^= mtime_ns.astype(np.int64).view(_U64)
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


class Known:
    """The files indexed under one root (:meth:`load`); :meth:`take` them as the walk finds them,
    what is left (:meth:`gone`) has vanished."""

    def __init__(self, n: int, wide: bool = False) -> None:
        self.n = n
        self.bits = max(1, (n - 1).bit_length())
        self.mask = _U64((1 << self.bits) - 1)
        self.key = np.zeros(n, dtype=_U64)
        self.chk = np.zeros(n, dtype=np.uint16)
        self.state = np.zeros(n, dtype=_U64)
        self.code = np.zeros(n, dtype=np.uint8)
        self.rids = RowIds(n, wide)
        self.starts: np.ndarray | None = None  # where each bucket of keys starts (:meth:`_index_buckets`)
        self.shift = _U64(64)

    def __len__(self) -> int:
        return self.n

    @property
    def nbytes(self) -> int:
        return (sum(a.nbytes for a in (self.key, self.chk, self.state, self.code)) + self.rids.nbytes
                + (self.starts.nbytes if self.starts is not None else 0))

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, root: str) -> Known:
        """The files under ``root`` (the root itself if a file, and every path below it)."""
        n, end, stretches = root_rows(con, root)
        self = cls(n, wide=end > 1 << 32)
        if not n:
            return self
        at = 0
        for got in stretches:
            m = len(got["rid"])
            if at + m > n:  # cannot happen within the transaction; never write past the arrays
                raise RuntimeError("the index changed while the scan read its known files")
            top, chk = path_marks(got["path"].tolist(), self.mask)
            del got["path"]
            sl = slice(at, at + m)
            self.key[sl] = top | np.arange(at, at + m, dtype=_U64)
            self.chk[sl] = chk
            self.state[sl] = file_state(np.ma.filled(got["size"], -1), np.ma.filled(got["mtime_ns"], -1))
            self.code[sl] = got["code"]
            self.rids.add(at, got["rid"])
            at += m
        if at != n:
            raise RuntimeError("the index changed while the scan read its known files")
        self.rids.finish()
        self.key.sort()
        self._index_buckets()
        return self

    def _index_buckets(self) -> None:
        """Where each bucket of keys (their top bits, ~4-8 keys each) starts: a lookup reads its bucket
        instead of searching the whole array (20 M keys: a binary search cost 1.6 us per key, most of
        it cache misses)."""
        if self.n < BUCKETS_FROM:
            return
        k = max(1, (self.n // 8).bit_length())
        self.shift = _U64(64 - k)
        counts = np.zeros(1 << k, dtype=np.int64)
        for i in range(0, self.n, LOAD_ROWS):
            counts += np.bincount((self.key[i:i + LOAD_ROWS] >> self.shift).astype(np.int64), minlength=1 << k)
        starts = np.zeros((1 << k) + 1, dtype=np.uint32 if self.n < 1 << 32 else np.int64)
        np.cumsum(counts, out=starts[1:])
        self.starts = starts

    def _first_at_or_above(self, top: np.ndarray) -> np.ndarray:
        """For each of ``top``, the position of the first key >= it (``n`` if none): a binary search,
        or a walk through its bucket (:meth:`_index_buckets`)."""
        if self.starts is None:
            order = np.argsort(top)  # the needles in order: each search starts near the last
            pos = np.empty(len(top), dtype=np.int64)
            pos[order] = np.searchsorted(self.key, top[order])
            return pos
        b = (top >> self.shift).astype(np.int64)
        pos = self.starts[b].astype(np.int64)
        end = self.starts[b + 1].astype(np.int64)
        live = np.flatnonzero(pos < end)
        while len(live):
            ahead = self.key[pos[live]] < top[live]
            live = live[ahead]
            pos[live] += 1
            live = live[pos[live] < end[live]]
        return pos

    def find(self, keys: Sequence[str]) -> np.ndarray:
        """The position of each path in the arrays (-1 if not known), visited or not."""
        out = np.full(len(keys), -1, dtype=np.int64)
        if not self.n or not keys:
            return out
        top, chk = path_marks(keys, self.mask)
        pos = self._first_at_or_above(top)
        inside = pos < self.n
        cand = self.key[np.where(inside, pos, 0)]
        same_top = inside & ((cand & ~self.mask) == top)
        idx = (cand & self.mask).astype(np.int64)
        hit = same_top & (self.chk[idx] == chk)
        out[hit] = idx[hit]
        # another path with the same high bits first: look through the run of equal high bits (rare)
        for j in np.flatnonzero(same_top & ~hit).tolist():
            p = int(pos[j]) + 1
            while p < self.n and (self.key[p] & ~self.mask) == top[j]:
                i = int(self.key[p] & self.mask)
                if self.chk[i] == chk[j]:
                    out[j] = i
                    break
                p += 1
        return out

    def take(self, keys: Sequence[str], sizes: Sequence[int], mtimes: Sequence[int]) -> tuple[list[int], list[int], list[bool]]:
        """The walk found ``keys`` (with these sizes and mtimes): for each, the row id it had in the index
        (-1 if new, or found already: a path is taken once), its ``code`` and whether its size and
        mtime are unchanged. Marks them found."""
        idx = self.find(keys)
        known = idx >= 0
        if not known.any():
            return [-1] * len(keys), [0] * len(keys), [False] * len(keys)
        at = np.where(known, idx, 0)
        code = self.code[at]
        known &= (code & VISITED) == 0
        if np.count_nonzero(known) > 1:  # a path twice in one batch: only its first entry takes it
            first = np.unique(idx[known], return_index=True)[1]
            if len(first) < np.count_nonzero(known):
                keep = np.zeros(len(keys), dtype=bool)
                keep[np.flatnonzero(known)[first]] = True
                known &= keep
        self.code[idx[known]] |= VISITED
        same = self.state[at] == file_state(np.asarray(sizes, dtype=np.int64), np.asarray(mtimes, dtype=np.int64))
        rid = np.full(len(keys), -1, dtype=np.int64)
        rid[known] = self.rids.get(idx[known])
        return rid.tolist(), (code & ~np.uint8(VISITED)).tolist(), (same & known).tolist()

    def gone(self) -> Gone:
        """The files the walk did not find that are not marked missing already."""
        left = ((self.code & VISITED) == 0) & (self.code != MISSING)
        pos = np.flatnonzero(left)
        top = np.zeros(len(pos), dtype=_U64)
        if len(pos):  # each one's key: the keys are sorted, with the position in their low bits
            for lo in range(0, self.n, LOAD_ROWS):
                k = self.key[lo:lo + LOAD_ROWS]
                at = (k & self.mask).astype(np.int64)
                sel = left[at]
                top[np.searchsorted(pos, at[sel])] = k[sel] & ~self.mask
        return Gone(self.rids.get(pos), top, self.chk[pos], self.mask)


def root_rows(con: duckdb.DuckDBPyConnection, root: str) -> tuple[int, int, Iterator[dict[str, Any]]]:
    """How many files are indexed under ``root``, the end of files' row ids, and those files
    (ops/scan/known_files: path, size, mtime_ns, code, rid as numpy arrays) one stretch of row ids
    at a time (:data:`LOAD_ROWS`). Read them within one transaction."""
    params: dict[str, Any] = {"root": root, "prefix": root.rstrip("/") + "/"}
    placed = run(con, "ops/scan/known_roots", params).fetchone()
    assert placed is not None  # an aggregate: one row
    params.update(inside=placed[0], above=placed[1])
    counted = run(con, "ops/scan/known_count", params).fetchone()
    n, end = (int(counted[0]), int(counted[1])) if counted else (0, 0)

    def stretches() -> Iterator[dict[str, Any]]:
        for lo in range(0, end if n else 0, LOAD_ROWS):
            got = run(con, "ops/scan/known_files", {**params, "lo": lo, "hi": lo + LOAD_ROWS}).fetchnumpy()
            if len(got["rid"]):
                yield got

    return n, end, stretches()


@dataclass
class Gone:
    """The files a scan did not find: the row ids they had when the scan read its known files, and
    what tells whether a row id still holds that file (its path hash's first word with the low
    ``mask`` bits cleared, and 16 bits of its second word, as :class:`Known` keeps them).

    A checkpoint may move rows: DuckDB compacts row groups of which many rows were deleted (a
    rescan replaces a changed file's row by deleting it) and the rows after them take lower row
    ids. What marks the files missing checks each row id's path (:meth:`still`) and finds a moved
    file again by its hash (:func:`find_rows`).
    """

    rids: np.ndarray
    top: np.ndarray
    chk: np.ndarray
    mask: np.uint64 = _U64(0)

    @classmethod
    def of_paths(cls, rids: Sequence[int], paths: Sequence[str]) -> Gone:
        """The gone files at ``rids`` with these paths."""
        top, chk = path_marks(paths, _U64(0))
        return cls(np.asarray(rids, dtype=np.int64), top, chk)

    def __len__(self) -> int:
        return len(self.rids)

    def part(self, sel: slice | np.ndarray) -> Gone:
        return Gone(self.rids[sel], self.top[sel], self.chk[sel], self.mask)

    @classmethod
    def joined(cls, parts: Sequence[Gone], mask: np.uint64) -> Gone:
        if not parts:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=_U64), np.zeros(0, dtype=np.uint16), mask)
        return cls(np.concatenate([p.rids for p in parts]), np.concatenate([p.top for p in parts]),
                   np.concatenate([p.chk for p in parts]), mask)

    def still(self, rids: np.ndarray, paths: Sequence[str]) -> np.ndarray:
        """Whether each gone file's row id still holds it, given the ``paths`` at ``rids`` now (row
        ids of this set; one that holds no row is missing from them)."""
        order = np.argsort(self.rids)
        at = order[np.searchsorted(self.rids[order], rids)]
        top, chk = path_marks(paths, self.mask)
        same = (top == self.top[at]) & (chk == self.chk[at])
        out = np.zeros(len(self), dtype=bool)
        out[at[same]] = True
        return out

    def moved_to(self, rids: np.ndarray) -> Gone:
        """These files at their new row ids ``rids`` (:func:`find_rows`), less those not found (-1)."""
        found = rids >= 0
        return Gone(rids[found], self.top[found], self.chk[found], self.mask)


def find_rows(con: duckdb.DuckDBPyConnection, root: str, gone: Gone) -> np.ndarray:
    """The row id of each of the ``gone`` files of ``root`` now (-1 where none holds it): one pass
    over the root's files (:func:`root_rows`)."""
    out = np.full(len(gone), -1, dtype=np.int64)
    if not len(gone):
        return out
    want = {(int(t), int(c)): i for i, (t, c) in enumerate(zip(gone.top.tolist(), gone.chk.tolist()))}
    tops = np.unique(gone.top)
    for got in root_rows(con, root)[2]:
        top, chk = path_marks(got["path"].tolist(), gone.mask)
        for j in np.flatnonzero(np.isin(top, tops, assume_unique=False)).tolist():  # the few that may be one
            i = want.get((int(top[j]), int(chk[j])))
            if i is not None:
                out[i] = int(got["rid"][j])
    return out


class RowIds:
    """The row ids of positions 0..n-1, added in ascending order of both (:meth:`add`, then :meth:`finish`).

    Held as runs: a position's row id is the position plus the offset of the run it is in (a root
    scanned at once has few runs; each row a rescan replaced, or another root's rows between, adds
    one or two). Once the runs would take more room than a plain array of row ids, a plain array.
    """

    def __init__(self, n: int, wide: bool = False) -> None:
        self.n, self.wide = n, wide
        self._starts: list[np.ndarray] = []
        self._offs: list[np.ndarray] = []
        self._count = 0
        self._last: int | None = None  # the offset of the last run
        self.starts = np.zeros(0, dtype=np.int64)
        self.offs = np.zeros(0, dtype=np.int64)
        self.plain: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return self.plain.nbytes if self.plain is not None else self.starts.nbytes + self.offs.nbytes

    def add(self, at: int, rids: np.ndarray) -> None:
        """The row ids of positions ``at``, ``at + 1``, ... (ascending, above those added before)."""
        if not len(rids):
            return
        if self.plain is not None:
            self.plain[at:at + len(rids)] = rids
            return
        d = np.asarray(rids, dtype=np.int64) - np.arange(at, at + len(rids), dtype=np.int64)
        first = np.concatenate(([0], np.flatnonzero(np.diff(d)) + 1))
        if self._last is not None and d[0] == self._last:
            first = first[1:]
        self._last = int(d[-1])
        if len(first):
            self._starts.append(first + at)
            self._offs.append(d[first])
            self._count += len(first)
        if self._count * 16 > self.n * (8 if self.wide else 4):
            self.finish()
            plain = np.zeros(self.n, dtype=np.int64 if self.wide else np.uint32)
            upto = at + len(rids)
            plain[:upto] = self.get(np.arange(upto))
            self.plain, self.starts, self.offs = plain, self.starts[:0], self.offs[:0]

    def finish(self) -> None:
        if self._starts:
            self.starts = np.concatenate([self.starts, *self._starts])
            self.offs = np.concatenate([self.offs, *self._offs])
            self._starts, self._offs = [], []

    def get(self, pos: np.ndarray) -> np.ndarray:
        """The row ids at positions ``pos`` (int64)."""
        pos = np.asarray(pos, dtype=np.int64)
        if self.plain is not None:
            return self.plain[pos].astype(np.int64)
        return pos + self.offs[np.searchsorted(self.starts, pos, side="right") - 1]
