"""Which attributes changed: the per-attribute digests the scan keeps (issue 14).

The scan's parser digests every sound dataset (:func:`pacscopy.scan.parse.attr_digest`): the
list of its top-level attributes (kept once per distinct list, table ``attr_tagsets``) and a
16-bit hash of each value. When a rescan replaces the content of a path, the index writer calls
:func:`record` before it overwrites the row: the old digest is kept (``attr_versions``) and the
old and new digests are compared, for every content that path ever had, into ``attr_changes``
(the books name them in an update's reason; ``sql/schema/0021_attr_digests.sql``). The work is a
delta's size: only paths whose content changed are looked at.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import cache
from typing import Any

import duckdb

from pacscopy.index import run

#: A reason names at most this many attributes, then "and N more".
MAX_NAMED = 12


def decode(digest: bytes, tags: bytes) -> dict[int, int]:
    """Attribute key -> 16-bit hash of its value, from a digest and its tag list."""
    n = len(tags) // 4
    if len(digest) != 8 + 2 * n:
        raise ValueError(f"a digest of {len(digest)} bytes does not fit a list of {n} attributes")
    return dict(zip(struct.unpack(f"<{n}I", tags), struct.unpack_from(f"<{n}H", digest, 8), strict=True))


@cache
def label(key: int) -> str:
    """A person's name for an attribute key: its keyword, else its tag (private: the block)."""
    group, el = key >> 16, key & 0xFFFF
    if group & 1:
        if el == 0xFFFF:  # the group's private data elements, one attribute (pacscopy.scan.parse.attr_digest)
            return f"({group:04X},xxxx) private data"
        if 0x10 <= el <= 0xFF:
            return f"({group:04X},{el:04X}) private creator"
        return f"({group:04X},{el:04X}) private"
    from pydicom.datadict import keyword_for_tag

    try:
        kw = keyword_for_tag(key)
    except Exception:  # a malformed tag: its number is its name
        kw = ""
    return kw or f"({group:04X},{el:04X})"


def changed(old: dict[int, int], new: dict[int, int]) -> str:
    """The attributes that differ between two decoded digests, in tag order, as a reason names them."""
    names = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a == b or not key & 0xFFFF:  # group lengths follow from the rest
            continue
        name = label(key)
        names.append(name if a is not None and b is not None else f"{name} ({'added' if a is None else 'removed'})")
    if not names:
        # every value hashes as before, yet the bytes differ: an encoding, or a change the 16 bits missed
        return "the dataset's encoding (every attribute's value hashes as before)"
    if len(names) > MAX_NAMED:
        names[MAX_NAMED:] = [f"and {len(names) - MAX_NAMED} more"]
    return ", ".join(names)


def record(con: duckdb.DuckDBPyConnection, columns: Sequence[str], rows: Sequence[Sequence[Any]],
           upserts: Sequence[Sequence[Any]], scan_id: int | None) -> None:
    """Keep the batch's digests and new attribute lists; for rows replacing a path's content, what changed.

    ``rows``: the scan rows about to be written (fields in ``columns`` order); ``upserts``: those
    of them that overwrite a path already in the index. Runs in the writer's transaction, before
    the rows are written. The work beyond one insert is in proportion to ``upserts`` (a delta).
    """
    ci = {c: i for i, c in enumerate(columns)}
    i_path, i_hash, i_digest, i_tags = ci["path"], ci["dataset_xxh3"], ci["attr_digest"], ci["attr_keys"]
    lists: dict[bytes, bytes] = {}
    for r in rows:
        d = r[i_digest]
        if d is not None and d[:8] not in lists:
            lists[d[:8]] = r[i_tags]
    if lists:
        known = {bytes(t) for (t,) in run(con, "ops/living/attr_tagsets_known", {"ids": list(lists)}).fetchall()}
        fresh = [(k, v) for k, v in lists.items() if k not in known]
        if fresh:
            run(con, "ops/living/attr_tagsets_insert", {"ids": [k for k, _ in fresh], "tags": [v for _, v in fresh]})
    if upserts:
        _replaced(con, {r[i_path]: r for r in upserts}, i_hash, i_digest, i_tags, lists, scan_id)
    digested = [r for r in rows if r[i_digest] is not None and r[i_hash] is not None]
    if digested:
        run(con, "ops/living/file_digests_insert", {"paths": [r[i_path] for r in digested],
                                                     "hashes": [r[i_hash] for r in digested],
                                                     "digests": [r[i_digest] for r in digested]})


def _replaced(con: duckdb.DuckDBPyConnection, replacing: dict[str, Sequence[Any]], i_hash: int, i_digest: int,
              i_tags: int, lists: dict[bytes, bytes], scan_id: int | None) -> None:
    """Rows that overwrite known paths: keep the contents they replace, record what changed, drop the old digests."""
    earlier = run(con, "ops/living/attr_earlier", {"paths": list(replacing)}).fetchall()
    if not earlier:
        return
    tags = dict(lists)
    missing = list({bytes(d[:8]) for (_, _, d, _) in earlier} - tags.keys())
    if missing:
        tags.update((bytes(k), bytes(v)) for k, v in run(con, "ops/living/attr_tagsets_get", {"ids": missing}).fetchall())
    keep: list[tuple[str, str, bytes]] = []
    found: list[tuple[str, str, str, str]] = []
    for path, old_hash, old_digest, is_current in earlier:
        new = replacing[path]
        if old_hash == new[i_hash]:
            continue
        old_digest = bytes(old_digest)
        if is_current:  # the content this rescan replaces: kept, it may be what a target holds
            keep.append((path, old_hash, old_digest))
        old_tags = tags.get(old_digest[:8])
        if old_tags is None or new[i_digest] is None or new[i_hash] is None:
            continue
        try:
            what = changed(decode(old_digest, old_tags), decode(new[i_digest], new[i_tags]))
        except ValueError:  # a damaged digest names nothing: the reason falls back to the indexed attributes
            continue
        found.append((old_hash, new[i_hash], what, path))
    if keep:
        run(con, "ops/living/attr_versions_insert",
            {"paths": [k[0] for k in keep], "hashes": [k[1] for k in keep], "digests": [k[2] for k in keep],
             "scan_id": scan_id})
    if found:
        run(con, "ops/living/attr_changes_insert",
            {"from": [f[0] for f in found], "to": [f[1] for f in found], "changed": [f[2] for f in found],
             "paths": [f[3] for f in found], "scan_id": scan_id})
    run(con, "ops/living/file_digests_drop", {"paths": list(replacing)})


def after_scan(con: duckdb.DuckDBPyConnection, scan_id: int) -> int:
    """Compare the files new in scan ``scan_id`` that hold an instance stored with other content.

    A corrected copy may come back under a new path (the old one gone, or still there): the
    writer's in-place comparison does not see it. One pass over the scan's new files and the
    stored instances among them; returns the pairs recorded.
    """
    pairs = run(con, "ops/living/attr_moved_pairs", {"scan_id": scan_id}).fetchall()
    if not pairs:
        return 0
    ids = list({bytes(d[:8]) for p in pairs for d in (p[3], p[4])})
    tags = {bytes(k): bytes(v) for k, v in run(con, "ops/living/attr_tagsets_get", {"ids": ids}).fetchall()}
    found = []
    for from_xxh3, to_xxh3, path, old, new in pairs:
        old, new = bytes(old), bytes(new)
        if old[:8] not in tags or new[:8] not in tags:
            continue
        try:
            what = changed(decode(old, tags[old[:8]]), decode(new, tags[new[:8]]))
        except ValueError:
            continue
        found.append((from_xxh3, to_xxh3, what, path))
    if found:
        run(con, "ops/living/attr_changes_insert",
            {"from": [f[0] for f in found], "to": [f[1] for f in found], "changed": [f[2] for f in found],
             "paths": [f[3] for f in found], "scan_id": scan_id})
    return len(found)
