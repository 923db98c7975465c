"""Bad input at scale (issue 12): a memory budget too small to work in, a full temporary disk.

Each is one line on stderr saying what ran out and how much to give, exit 2, and nothing
half-written (check's findings and plan are one transaction).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pacscopy.index import open_index
from pacscopy.testing import scale


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    idx = tmp_path_factory.mktemp("budget") / "b.duckdb"
    con = open_index(str(idx), create=True)
    try:
        scale.fill(con, 100_000)
    finally:
        con.close()
    return idx


def _copy(archive: Path, tmp_path: Path) -> Path:
    idx = tmp_path / "c.duckdb"
    idx.write_bytes(archive.read_bytes())
    return idx


def _nothing_written(idx: Path) -> None:
    con = open_index(str(idx), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM plan_auto").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM findings").fetchone()[0] == 0
    finally:
        con.close()


def test_a_memory_budget_too_small_says_how_much_is_needed(archive: Path, tmp_path: Path, cli, monkeypatch) -> None:
    idx = _copy(archive, tmp_path)
    monkeypatch.setenv("PACSCOPY_MEMORY_LIMIT", "24MB")
    r = cli("check", "-q", "--index", idx)
    assert r.code == 2, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert r.err.startswith("pacscopy: error: the memory budget is too small for this work: DuckDB may use 24MB")
    assert "set PACSCOPY_MEMORY_LIMIT=1GB" in r.err and "nothing was half-written" in r.err
    assert "temporary disk" not in r.err
    _nothing_written(idx)


def test_a_full_temporary_disk_during_check_is_its_own_line(archive: Path, tmp_path: Path, cli, monkeypatch) -> None:
    """DuckDB's temporary files capped at 1 MB (as a full disk caps them): not 'out of memory', but the
    temporary disk, where it is and what to do; nothing written. With the default budget and room the check runs."""
    idx = _copy(archive, tmp_path)
    monkeypatch.setenv("PACSCOPY_MEMORY_LIMIT", "50MB")
    monkeypatch.setenv("PACSCOPY_TEMP_DIRECTORY", str(tmp_path / "spill"))
    monkeypatch.setenv("PACSCOPY_TEMP_LIMIT", "1MB")
    r = cli("check", "-q", "--index", idx)
    assert r.code == 2, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert r.err.startswith("pacscopy: error: the temporary disk is full: DuckDB spills what does not fit in memory "
                            f"to {tmp_path / 'spill'} and may use 1MB there"), r.err
    assert "PACSCOPY_TEMP_DIRECTORY" in r.err and "memory budget" not in r.err
    _nothing_written(idx)
    monkeypatch.setenv("PACSCOPY_TEMP_LIMIT", "5GB")
    monkeypatch.delenv("PACSCOPY_MEMORY_LIMIT")
    r = cli("check", "-q", "--index", idx)
    assert r.code == 0, r.err
    con = open_index(str(idx), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM plan_auto").fetchone()[0] > 90_000
    finally:
        con.close()


@pytest.mark.parametrize("env, value, says", [
    ("PACSCOPY_TEMP_LIMIT", "lots", "PACSCOPY_TEMP_LIMIT='lots' is not a DuckDB size"),
    ("PACSCOPY_MEMORY_LIMIT", "lots", "PACSCOPY_MEMORY_LIMIT='lots' is not a DuckDB memory size"),
])
def test_a_budget_that_is_not_a_size_is_one_line(archive: Path, tmp_path: Path, cli, monkeypatch, env, value,
                                                 says) -> None:
    idx = _copy(archive, tmp_path)
    monkeypatch.setenv(env, value)
    r = cli("status", "--target", scale.TARGET, "--index", idx)
    assert r.code == 2 and says in r.err and len(r.err.strip().splitlines()) == 1, r.err


@pytest.fixture(scope="module")
def checked(archive: Path, tmp_path_factory) -> Path:
    """The archive checked, with a send's books (scale.fill's transfers and verifications): what status
    and reconcile evaluate in full when no figures are kept."""
    idx = tmp_path_factory.mktemp("budget_checked") / "k.duckdb"
    idx.write_bytes(archive.read_bytes())
    from pacscopy.check.checks import run_checks

    con = open_index(str(idx))
    try:
        run_checks(con)
        assert con.execute("SELECT count(*) FROM status_kept").fetchone()[0] == 0
    finally:
        con.close()
    return idx


def _nothing_kept(idx: Path) -> None:
    con = open_index(str(idx), read_only=True)
    try:
        for table in ("status_kept", "status_counts", "status_instances"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        assert con.execute("SELECT count(*) FROM plan_auto").fetchone()[0] > 90_000
    finally:
        con.close()
    assert not list((idx.parent / (idx.name + ".run")).glob("status-*.json"))


@pytest.mark.parametrize("command", [
    ("status", "--target", scale.TARGET),
    ("reconcile", "--target", scale.TARGET, "--no-query", "--format", "json"),
])
def test_a_full_temporary_disk_during_status_or_reconcile_is_one_line(checked: Path, tmp_path: Path, cli,
                                                                       monkeypatch, command) -> None:
    """status and reconcile count every instance (none kept yet) in one pass here (a slice as big as the
    plan), which spills beyond a 50 MB budget: the temporary disk capped at 1 MB is full. One line,
    exit 2, the count's transaction rolled back (nothing kept, no slice left set); then, with the
    default budgets (sliced to fit), the same command counts and keeps the figures."""
    from pacscopy.send import status_counts

    idx = tmp_path / "c.duckdb"
    idx.write_bytes(checked.read_bytes())
    monkeypatch.setattr(status_counts, "SLICE_INSTANCES_PER_MIB", 10**9)
    monkeypatch.setenv("PACSCOPY_MEMORY_LIMIT", "50MB")
    monkeypatch.setenv("PACSCOPY_TEMP_DIRECTORY", str(tmp_path / "spill"))
    monkeypatch.setenv("PACSCOPY_TEMP_LIMIT", "1MB")
    r = cli(*command, "--index", idx)
    assert r.code == 2, (r.code, r.err)
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    assert r.err.startswith("pacscopy: error: the temporary disk is full: DuckDB spills what does not fit in memory "
                            f"to {tmp_path / 'spill'} and may use 1MB there"), r.err
    assert "set PACSCOPY_TEMP_LIMIT=2MB (twice this cap)" in r.err and "nothing was half-written" in r.err
    _nothing_kept(idx)
    monkeypatch.undo()
    r = cli(*command, "--index", idx)
    assert r.code in (0, 1), r.err
    con = open_index(str(idx), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM status_instances").fetchone()[0] > 90_000
    finally:
        con.close()


def test_a_memory_budget_too_small_for_status_says_how_much_is_needed(checked: Path, tmp_path: Path, cli,
                                                                      monkeypatch) -> None:
    idx = tmp_path / "c.duckdb"
    idx.write_bytes(checked.read_bytes())
    monkeypatch.setenv("PACSCOPY_MEMORY_LIMIT", "24MB")
    r = cli("status", "--target", scale.TARGET, "--index", idx)
    assert r.code == 2, (r.code, r.err)
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    assert r.err.startswith("pacscopy: error: the memory budget is too small for this work: DuckDB may use 24MB")
    assert "set PACSCOPY_MEMORY_LIMIT=1GB" in r.err and "nothing was half-written" in r.err, r.err
    _nothing_kept(idx)


def test_the_default_temporary_limit_is_half_the_free_disk(tmp_path: Path, monkeypatch) -> None:
    """Without PACSCOPY_TEMP_LIMIT DuckDB may fill half of what is free on the temporary folder's disk
    (not DuckDB's own 90 %): the other half is the index's, which grows in the same transaction."""
    import os

    monkeypatch.delenv("PACSCOPY_TEMP_LIMIT", raising=False)
    monkeypatch.setenv("PACSCOPY_TEMP_DIRECTORY", str(tmp_path / "not-yet" / "spill"))

    def free() -> int:
        st = os.statvfs(tmp_path)
        return st.f_bavail * st.f_frsize

    before = free()  # other processes may write meanwhile: the cap lies between half of before and after
    con = open_index(str(tmp_path / "d.duckdb"), create=True)
    after = free()
    try:
        got = con.execute("SELECT current_setting('max_temp_directory_size')").fetchone()[0]
        assert got != "90% of available disk space"
        size = float(got.split()[0]) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[got.split()[1]]
        assert 0.49 * min(before, after) <= size <= 0.51 * max(before, after), (got, before, after)
    finally:
        con.close()


def test_a_full_check_out_of_memory_with_status_figures_kept_says_so(archive: Path, tmp_path: Path, cli,
                                                                     monkeypatch) -> None:
    """With status's figures kept a full check keeps a digest of the plan around its rebuild; a budget
    too small fails there with the budget line (the cleanup after it once replaced it with DuckDB's
    'transaction is aborted'), and the plan and the kept figures are as before."""
    idx = _copy(archive, tmp_path)
    assert cli("check", "-q", "--index", idx).code == 0
    assert cli("status", "--target", scale.TARGET, "--index", idx).code == 0
    con = open_index(str(idx), read_only=True)
    try:
        before = con.execute("SELECT count(*), sum(hash(sop_instance_uid, path, disposition)) FROM plan_auto").fetchone()
        kept = con.execute("SELECT fingerprint FROM status_kept").fetchall()
    finally:
        con.close()
    assert len(kept) == 1
    monkeypatch.setenv("PACSCOPY_MEMORY_LIMIT", "24MB")
    r = cli("check", "-q", "--full", "--index", idx)
    assert r.code == 2, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert r.err.startswith("pacscopy: error: the memory budget is too small for this work"), r.err
    con = open_index(str(idx), read_only=True)
    try:
        assert con.execute("SELECT count(*), sum(hash(sop_instance_uid, path, disposition)) FROM plan_auto").fetchone() == before
        assert con.execute("SELECT fingerprint FROM status_kept").fetchall() == kept
    finally:
        con.close()
