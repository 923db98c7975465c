"""files without its PRIMARY KEY index (schema 0033, issue 12): an older index keeps every row, and the
scan alone keeps one row per path, through every kind of rescan; a scan of a root inside or above a
running scan's root is refused (the one case two writers could both record a new file)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pacscopy.index import open_index
from pacscopy.scan.scan import lock_roots
from pacscopy.testing import scale
from pacscopy.testing.synth import make_archive

from .conftest import index_before, rows

NO_REPEATED_PATH = "SELECT path, count(*) FROM files GROUP BY path HAVING count(*) > 1"


def test_an_index_made_before_0033_keeps_every_row_in_order_without_the_path_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    idx = tmp_path / "old.duckdb"
    with index_before(idx, monkeypatch, 33) as con:
        scale.fill(con, 500)
        con.execute("DELETE FROM files WHERE rowid % 7 = 3")  # gaps in the row ids, as rescans leave them
        before = con.execute("SELECT * FROM files ORDER BY rowid").fetchall()
        keys = con.execute("SELECT constraint_type FROM duckdb_constraints() WHERE table_name = 'files'").fetchall()
    assert ("PRIMARY KEY",) in keys  # what 0033 removes
    con = open_index(str(idx))
    try:
        after = con.execute("SELECT * FROM files ORDER BY rowid").fetchall()
        keys = con.execute("SELECT constraint_type, constraint_column_names FROM duckdb_constraints() "
                           "WHERE table_name = 'files' AND constraint_type <> 'NOT NULL'").fetchall()
        not_null = {c for (c,) in con.execute("SELECT unnest(constraint_column_names) FROM duckdb_constraints() "
                                              "WHERE table_name = 'files' AND constraint_type = 'NOT NULL'").fetchall()}
        views = con.execute("SELECT count(*) FROM instances").fetchone()[0]
    finally:
        con.close()
    assert len(before) == 500 - len(range(3, 500, 7)) and after == before
    assert keys == []
    assert not_null == {"path", "volume", "root", "status", "first_seen", "scanned_at", "scan_id", "sop_hash"}
    assert views > 0  # the views read the new table


def test_every_kind_of_rescan_keeps_one_row_per_path(tmp_path: Path, cli) -> None:
    """Changed, vanished, new and moved files, and rescans of a recorded root's child and parent."""
    vol = tmp_path / "restore" / "vol"
    make_archive(vol, seed=33, defects=False, conflicts=False, specials=False)
    idx = tmp_path / "i.duckdb"
    assert cli("scan", vol, "--index", idx, "--quiet").code == 0
    files = sorted(p for p in vol.rglob("*") if p.is_file())
    first = rows(idx, "SELECT count(*) FROM files")[0][0]
    assert first == len(files) > 20

    # change, remove, add, move: a delta rescan of the root
    changed = files[0]
    changed.write_bytes(changed.read_bytes() + b"\0\0")
    files[1].unlink()
    shutil.copy(files[2], vol / "new-copy.dcm")
    sub = files[3].parent
    files[4].rename(sub / "moved.dcm")
    assert cli("scan", vol, "--index", idx, "--quiet").code == 0
    # a child of the recorded root, then the restore folder above it, then the root again, rehashed
    assert cli("scan", sub, "--index", idx, "--quiet").code == 0
    (sub / "later.dcm").write_bytes(files[5].read_bytes())
    assert cli("scan", vol.parent, "--index", idx, "--quiet").code == 0
    assert cli("scan", vol, "--index", idx, "--quiet", "--rehash").code == 0

    assert rows(idx, NO_REPEATED_PATH) == []
    on_disk = {os.fsencode(p) for p in vol.rglob("*") if p.is_file()}  # one name is not UTF-8
    recorded = dict(rows(idx, "SELECT file_path_bytes(path, path_bytes), status FROM files"))
    assert {p for p, s in recorded.items() if s != "missing"} == on_disk
    assert {p for p, s in recorded.items() if s == "missing"} == {os.fsencode(files[1]), os.fsencode(files[4])}
    assert len(recorded) == first + 3  # new-copy, moved, later


def test_a_scan_of_a_root_inside_or_above_a_running_scan_is_refused(tmp_path: Path, cli) -> None:
    vol = tmp_path / "vol"
    for d in ("a/b", "a-side"):
        (vol / d).mkdir(parents=True)
        (vol / d / "f.dcm").write_bytes(b"not dicom")
    idx = tmp_path / "i.duckdb"
    assert cli("scan", vol / "a-side", "--index", idx, "--quiet").code == 0
    real = os.path.realpath(vol / "a")
    held = lock_roots(str(idx), [vol / "a"])  # a scan of vol/a, running
    try:
        inside = cli("scan", vol / "a" / "b", "--index", idx, "--quiet")
        above = cli("scan", vol, "--index", idx, "--quiet")
        beside = cli("scan", vol / "a-side", "--index", idx, "--quiet")  # its name starts like a's: not inside
    finally:
        for lock in held:
            lock.release()
    assert inside.code == above.code == 2
    assert inside.err.startswith(f"pacscopy: error: a scan of {real} into index {idx} is already running (pid "
                                 f"{os.getpid()} on "), inside.err
    assert inside.err.rstrip().endswith(f"{os.path.realpath(vol / 'a' / 'b')} is inside its root, and scans of roots "
                                        "inside one another would record the same files twice; wait for it to end "
                                        "or stop it (Ctrl-C)"), inside.err
    assert f"{os.path.realpath(vol)} is above its root" in above.err
    assert len(inside.err.splitlines()) == len(above.err.splitlines()) == 1
    assert beside.code == 0, beside.err
    # refused before anything was written, and the refused scans left no lock behind
    assert rows(idx, "SELECT count(*), count(DISTINCT root) FROM files") == [(1, 1)]
    assert [p.name for p in Path(str(idx) + ".run").glob("scan-*.lock")] == []
    assert cli("scan", vol / "a" / "b", "--index", idx, "--quiet").code == 0  # once the other has ended

