"""A rescan's known files (pacscopy.scan.known): compact lookups, rows replaced by row id, and vanished
files marked missing by row id checked against their paths (rows a checkpoint moved are found again)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from pacscopy.index import open_index
from pacscopy.scan.fileread import entry_row
from pacscopy.scan.known import READ, VISITED, Known, RowIds, file_state, path_hashes
from pacscopy.scan.scan import _Hop, _Writer, scan, start_root
from pacscopy.testing import scale

from .conftest import rows


def test_paths_with_equal_high_bits_are_told_apart_by_the_rest_of_their_hash() -> None:
    """Paths whose keys share their high bits sit next to each other: each is found by its full hash."""
    paths = ["/r/0.dcm", "/r/1.dcm"]
    h = path_hashes(paths)
    known = Known(3)
    low = np.uint64(0xFFFF)
    # position 0: another path with /r/0.dcm's high bits (its other bits differ); 1: /r/0.dcm; 2: /r/1.dcm
    for i, (word, chk) in enumerate([(h[0, 0], (h[0, 1] & low) ^ np.uint64(1)), (h[0, 0], h[0, 1] & low),
                                     (h[1, 0], h[1, 1] & low)]):
        known.key[i] = (word & ~known.mask) | np.uint64(i)
        known.chk[i] = np.uint16(chk)
    known.rids.add(0, np.array([100, 101, 102]))
    known.rids.finish()
    known.key.sort()
    assert known.find(paths + ["/r/other.dcm"]).tolist() == [1, 2, -1]
    rids, codes, same = known.take(paths[:1], [1], [0])
    assert rids == [101] and codes == [READ] and same == [False]
    assert known.take(paths[1:] + paths[1:], [1, 1], [0, 0])[0] == [102, -1]  # a path is taken once
    assert known.take(paths[:1], [1], [0])[0] == [-1]
    assert known.gone().rids.tolist() == [100]


def test_known_files_of_a_root_and_what_the_walk_left(tmp_path) -> None:
    root = tmp_path / "vol"
    (root / "a").mkdir(parents=True)
    for i in range(50):
        (root / "a" / f"f{i:02}").write_bytes(b"x" * i)
    (root / "b\xe9".encode("latin-1").decode("utf-8", "surrogateescape")).write_bytes(b"not utf-8 name")
    other = tmp_path / "volume2"  # a sibling whose name starts like the root's: not under it
    other.mkdir()
    (other / "g").write_bytes(b"g")
    idx = str(tmp_path / "i.duckdb")
    scan([root, other], idx, workers=1)
    con = open_index(idx)
    try:
        _, known = start_root(con, str(root), "vol")
        found = con.execute("SELECT path, rowid, coalesce(path_bytes, encode(path)) FROM files WHERE starts_with(path, $p)",
                            {"p": str(root) + "/"}).fetchall()
    finally:
        con.close()
    indexed = {p: r for p, r, _ in found}
    assert len(known) == len(indexed) == 51
    assert any("\\xe9" in p for p in indexed)
    keys = sorted(indexed)
    st = [os.stat(bytes(dict((p, b) for p, _, b in found)[k])) for k in keys]
    rids, codes, same = known.take(keys[:40], [s.st_size for s in st[:40]], [s.st_mtime_ns for s in st[:40]])
    assert rids == [indexed[k] for k in keys[:40]] and set(codes) == {READ} and all(same)
    assert (known.code[known.find(keys[:40])] & VISITED).all()
    assert sorted(known.gone().rids.tolist()) == sorted(indexed[k] for k in keys[40:])
    # size or mtime changed: known, not the same
    assert known.take(keys[40:41], [st[40].st_size + 1], [st[40].st_mtime_ns])[2] == [False]
    assert file_state(np.array([1]), np.array([2]))[0] != file_state(np.array([2]), np.array([1]))[0]


def test_a_replaced_row_that_moved_is_found_by_its_path(tmp_path) -> None:
    """The writer replaces rows by the row ids read with the known files, checked against the path;
    a row that moved meanwhile (another scan of an overlapping root replaced it) is found by path."""
    root = tmp_path / "vol"
    root.mkdir()
    for name in ("a", "b", "c"):
        (root / name).write_bytes(name.encode() * 10)
    idx = str(tmp_path / "i.duckdb")
    scan([root], idx, workers=1)
    a, b = str(root / "a"), str(root / "b")
    before = dict(rows(idx, "SELECT path, first_seen FROM files"))
    hop = _Hop(idx)
    con = hop.connect()
    assert con is not None
    try:
        scan_id, known = start_root(con, str(root), "vol")
        old = dict(zip([a, b], known.take([a, b], [0, 0], [0, 0])[0]))
        # another writer replaces a's row meanwhile: a new row id
        con.execute("CREATE TEMP TABLE moved AS SELECT * FROM files WHERE path = $p", {"p": a})
        con.execute("DELETE FROM files WHERE path = $p", {"p": a})
        con.execute("INSERT INTO files SELECT * FROM moved")
        assert con.execute("SELECT rowid FROM files WHERE path = $p", {"p": a}).fetchone()[0] != old[a]
        writer = _Writer(hop, scan_id, "vol", str(root), con)
        writer.upserts = dict(old)
        writer.rows = [entry_row(os.fsencode(p), 99, 1, "skipped", "symlink", "now a link") for p in (a, b)]
        writer.write(con)
        assert writer.upserts == {}
    finally:
        con.close()
    got = rows(idx, "SELECT path, size, status, first_seen FROM files ORDER BY path")
    assert [(p, s, st) for p, s, st, _ in got] == [(a, 99, "skipped"), (b, 99, "skipped"), (str(root / "c"), 10, "not_dicom")]
    assert {p: f for p, _, _, f in got} == before  # first_seen kept for both


def test_row_ids_as_runs_and_as_a_plain_array() -> None:
    rids = np.concatenate([np.arange(5, 405), np.arange(1000, 1300), np.arange(5000, 5300)])
    runs = RowIds(len(rids))
    runs.add(0, rids[:200])  # a run continues across two additions
    runs.add(200, rids[200:])
    runs.finish()
    assert runs.plain is None and len(runs.starts) == 3
    assert runs.get(np.arange(len(rids))).tolist() == rids.tolist()
    scattered = np.arange(0, 300, 3, dtype=np.int64)  # every row id its own run: a plain array
    plain = RowIds(len(scattered))
    for at in range(0, len(scattered), 7):
        plain.add(at, scattered[at:at + 7])
    plain.finish()
    assert plain.plain is not None
    assert plain.get(np.array([99, 0, 50])).tolist() == [297, 0, 150]


def _scanned_volume(tmp_path, cli, files: int):
    """A folder of ``files`` small files (f00, f01, ...) scanned into a new index: (folder, index)."""
    root = tmp_path / "vol"
    root.mkdir()
    for i in range(files):
        (root / f"f{i:02}").write_bytes(b"x" * (i + 1))
    idx = tmp_path / "i.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    return root, idx


def test_vanished_files_marked_in_slices_and_too_many_not_recorded(tmp_path, cli, monkeypatch) -> None:
    """Vanished files are marked missing a slice of row ids per transaction; past the incremental
    check's bound they are not recorded one by one: the next check is a full one."""
    import pacscopy.scan.scan as scan_mod

    root, idx = _scanned_volume(tmp_path, cli, 30)
    assert cli("check", "--index", idx, "-q").code == 0
    assert rows(idx, "SELECT full_needed FROM check_state") == [(False,)]
    for i in range(2):  # a few: recorded for the incremental check
        (root / f"f{i:02}").unlink()
    monkeypatch.setattr(scan_mod, "GONE_ROWS", 7)
    scan([root], str(idx), workers=1)
    assert rows(idx, "SELECT count(*) FROM check_dirty") == [(2,)]
    for i in range(2, 30):  # many: past the bound (DIRTY_MAX, lowered here)
        (root / f"f{i:02}").unlink()
    monkeypatch.setattr(scan_mod, "DIRTY_MAX", 5)
    res = scan([root], str(idx), workers=1).results[0]
    assert res.missing == 28
    assert rows(idx, "SELECT status, count(*) FROM files GROUP BY 1") == [("missing", 30)]
    assert rows(idx, "SELECT full_needed FROM check_state") == [(True,)]
    assert rows(idx, "SELECT count(*) FROM check_dirty") == [(0,)]


def test_lookups_through_buckets_equal_a_binary_search() -> None:
    from pacscopy.scan.known import BUCKETS_FROM

    n = BUCKETS_FROM + 4321
    paths = [f"/r/s{i // 1000:04}/{i:08}.dcm" for i in range(n)]
    known = Known(n)
    h = path_hashes(paths)
    known.key[:] = (h[:, 0] & ~known.mask) | np.arange(n, dtype=np.uint64)
    known.chk[:] = h[:, 1].astype(np.uint16)
    known.rids.add(0, np.arange(n) * 2)
    known.rids.finish()
    known.key.sort()
    queries = paths[::7] + [f"/r/new{i}.dcm" for i in range(500)]
    binary = known.find(queries)
    known._index_buckets()
    assert known.starts is not None
    assert known.find(queries).tolist() == binary.tolist() == list(range(0, n, 7)) + [-1] * 500


def test_vanished_files_are_marked_with_the_upserts_budget(tmp_path, cli, monkeypatch) -> None:
    """Marking vanished files missing changes rows already in the index, as an upsert does, and with
    status's figures kept evaluates their instances' states: at 50 M files, after 500,000 changed
    files were written, the scan's 128 MB ran out there. It runs at the upserts' budget, and the
    scan's own limit is back after it."""
    import pacscopy.scan.scan as scan_mod

    root, idx = _scanned_volume(tmp_path, cli, 6)
    (root / "f00").unlink()
    monkeypatch.delenv("PACSCOPY_MEMORY_LIMIT", raising=False)
    limits: dict[str, str] = {}
    real_script, real_run = scan_mod.run_script, scan_mod.run

    def limit_at(name, con):
        if name in ("ops/scan/gone_begin", "ops/scan/scan_finish"):
            limits[name] = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    monkeypatch.setattr(scan_mod, "run_script", lambda con, name, params=None: limit_at(name, con)
                        or real_script(con, name, params))
    monkeypatch.setattr(scan_mod, "run", lambda con, name, params=None: limit_at(name, con) or real_run(con, name, params))
    res = scan([root], str(idx), workers=1).results[0]
    assert res.missing == 1

    def shown(limit: str) -> str:  # the limit as DuckDB shows it
        con = open_index(str(idx), memory_limit=limit, read_only=True)
        try:
            return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        finally:
            con.close()

    assert limits == {"ops/scan/gone_begin": shown(scan_mod.UPSERT_MEMORY_LIMIT),
                      "ops/scan/scan_finish": shown(scan_mod.SCAN_MEMORY_LIMIT)}


def test_known_files_under_overlapping_roots_are_found_by_their_recorded_root(tmp_path) -> None:
    """A rescan finds a root's known files by the roots recorded in files (ops/scan/known_roots), not by
    every file's path: a file recorded under the root or one below it, and one recorded under a root
    above it whose path lies under it; none of a sibling whose name starts like it. Rescanning a child
    of an indexed root, and the parent of indexed roots, reads nothing again, duplicates no path and
    marks only the files gone from under the root scanned missing."""
    top = tmp_path / "restore"
    for vol, n in (("tape1", 30), ("tape10", 20)):  # tape10 starts like tape1: not under it
        for i in range(n):
            (top / vol / "d").mkdir(parents=True, exist_ok=True)
            (top / vol / "d" / f"f{i:02}").write_bytes(bytes([i]) * (i + 1))
    idx = str(tmp_path / "i.duckdb")
    scan([top], idx, workers=1)  # recorded under the parent
    con = open_index(idx)
    try:
        _, known = start_root(con, str(top / "tape1"), "tape1")  # a child of the recorded root
        assert len(known) == 30
        _, known = start_root(con, str(top / "tape10"), "tape10")
        assert len(known) == 20
    finally:
        con.close()
    (top / "tape1" / "d" / "f00").unlink()
    res = scan([top / "tape1"], idx, workers=1).results[0]
    assert (res.files_read, res.unchanged, res.missing) == (0, 29, 1), res
    assert rows(idx, "SELECT count(*), count(DISTINCT path) FROM files") == [(50, 50)]
    assert rows(idx, "SELECT path FROM files WHERE status = 'missing'") == [(str(top / "tape1" / "d" / "f00"),)]
    assert rows(idx, "SELECT count(*) FROM files WHERE root = $r", {"r": str(top)}) == [(50,)]
    (top / "tape10" / "d" / "new").write_bytes(b"new")
    scan([top / "tape10"], idx, workers=1)  # a new file is recorded under tape10, the unchanged keep theirs
    assert rows(idx, "SELECT root, count(*) FROM files GROUP BY 1 ORDER BY 1") == [(str(top), 50), (str(top / "tape10"), 1)]
    con = open_index(idx)
    try:
        _, known = start_root(con, str(top), "restore")  # the parent of a recorded root
        assert len(known) == 51
        _, known = start_root(con, str(top / "tape"), "tape")  # no such folder indexed: nothing
        assert len(known) == 0
    finally:
        con.close()


def _root_after_other_rows(tmp_path: Path) -> tuple[Path, Path]:
    """An index of 300,000 synthetic rows (row ids 0 .. 299,999) and a root ``vol`` of 30 small files
    not scanned yet: its rows will come after them."""
    idx = tmp_path / "i.duckdb"
    vol = tmp_path / "vol"
    vol.mkdir()
    for i in range(30):
        (vol / f"f{i:02}.dcm").write_bytes(b"not dicom %d" % i)
    con = open_index(str(idx), create=True)
    try:
        scale.fill(con, 300_000, sent=0, verified=0)
    finally:
        con.close()
    return idx, vol


@pytest.mark.parametrize("shift", ["two row groups dropped", "three row groups merged into two"])
def test_vanished_files_are_marked_missing_even_when_a_checkpoint_moved_their_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shift: str) -> None:
    """Rows deleted before a root's rows (a rescan's replaced rows, another scan's) are compacted by
    another process's checkpoint while the scan has let go of the index: the root's rows take lower
    row ids. The files that vanished are still the ones marked missing, and no other root's file is."""
    from pacscopy.scan import scan as scanning

    idx, vol = _root_after_other_rows(tmp_path)
    scanning.scan([vol], str(idx), workers=1)
    con = open_index(str(idx))
    try:  # another root's rows after the root's: where the root's old row ids point once rows moved
        con.execute("INSERT INTO files SELECT * REPLACE ('/after' || path AS path, '/after' AS root) "
                    "FROM files WHERE rowid < 300000")
    finally:
        con.close()
    for i in (3, 17, 29):
        (vol / f"f{i:02}.dcm").unlink()
    # a stretch of rows deleted before the root's, and a checkpoint, while the scan walks
    doomed = ("rowid < 245760 AND root <> $root" if shift.startswith("two")
              else "rowid < 368640 AND rowid % 3 = 0 AND root <> $root")
    real_finish = scanning.finish_root
    before = {}

    def finish_after_rows_moved(con, res, gone, started):
        before["rids"] = con.execute("SELECT min(rowid) FROM files WHERE root = $root", {"root": str(vol)}).fetchone()[0]
        con.execute(f"DELETE FROM files WHERE {doomed}", {"root": str(vol)})
        con.execute("RESET max_vacuum_tasks")  # as another process's checkpoint would (the scan's own keep rows)
        con.execute("CHECKPOINT")
        con.execute("SET max_vacuum_tasks = 0")
        before["moved_to"] = con.execute("SELECT min(rowid) FROM files WHERE root = $root",
                                         {"root": str(vol)}).fetchone()[0]
        real_finish(con, res, gone, started)

    monkeypatch.setattr(scanning, "finish_root", finish_after_rows_moved)
    got = scanning.scan([vol], str(idx), workers=1)
    assert before["moved_to"] < before["rids"]  # the rows did move (what the test is about)
    assert got.results[0].missing == 3
    missing = rows(idx, "SELECT path FROM files WHERE status = 'missing' ORDER BY path")
    assert missing == [(str(vol / f"f{i:02}.dcm"),) for i in (3, 17, 29)]



def test_rows_moved_under_a_rescan_are_found_again_in_one_pass_for_every_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint moves the rows a rescan still has to replace (whole row groups before them
    deleted and dropped): the first batch that misses finds every row still to replace by path in one
    pass, the later batches use those row ids; each changed file keeps one row, with its new content."""
    from pacscopy.scan import scan as scanning

    idx, vol = _root_after_other_rows(tmp_path)
    scan([vol], str(idx), workers=1)
    hop = _Hop(str(idx))
    con = hop.connect()
    assert con is not None
    assert con.execute("SELECT current_setting('max_vacuum_tasks')").fetchone() == (0,)  # the scan's own: none
    passes: list[str] = []
    real_script = scanning.run_script
    monkeypatch.setattr(scanning, "run_script",
                        lambda c, name, params=None: (passes.append(name) if name == "ops/scan/upsert_relocate" else None)
                        or real_script(c, name, params))
    try:
        scan_id, known = start_root(con, str(vol), "vol")
        paths = sorted(str(p) for p in vol.iterdir())
        rids, _, _ = known.take(paths, [0] * 30, [0] * 30)
        con.execute("DELETE FROM files WHERE rowid < 245760 AND root <> $r", {"r": str(vol)})
        con.execute("RESET max_vacuum_tasks")  # as another process's checkpoint would
        con.execute("CHECKPOINT")
        con.execute("SET max_vacuum_tasks = 0")
        assert con.execute("SELECT min(rowid) FROM files WHERE root = $r", {"r": str(vol)}).fetchone()[0] < min(rids)
        writer = _Writer(hop, scan_id, "vol", str(vol), con)
        writer.upserts = dict(zip(paths, rids))
        for part in (paths[:10], paths[10:20], paths[20:]):  # three batches, one transaction each
            writer.rows = [entry_row(os.fsencode(p), 99, 1, "skipped", "symlink", "now a link") for p in part]
            writer.write(con)
        assert writer.upserts == {}
    finally:
        con.close()
    assert passes == ["ops/scan/upsert_relocate"]  # one pass, for all three batches
    assert rows(idx, "SELECT count(*), count(DISTINCT path), min(size), max(size) FROM files WHERE root = $r",
                {"r": str(vol)}) == [(30, 30, 99, 99)]
