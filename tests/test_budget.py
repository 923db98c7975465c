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
