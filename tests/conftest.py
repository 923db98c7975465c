"""Shared fixtures: real sample files, synthetic archives, and a CLI runner."""

from __future__ import annotations

import os
import shutil

# The per-attribute digests are off by default (a cost on every first scan); the tests of update
# reasons need them, and every scan worker a test starts inherits this. test_attrdigest checks the
# default without it.
os.environ["PACSCOPY_ATTR_DIGESTS"] = "on"
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pydicom
import pytest

from pacscopy.cli import main
from pacscopy.testing.synth import Manifest, make_archive

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run the pacscopy CLI in-process; return exit code, stdout, stderr."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        cap = capsys.readouterr()
        return Result(code, cap.out, cap.err)

    return run


@pytest.fixture(scope="session")
def pydicom_files() -> Path:
    assert PYDICOM_FILES.is_dir(), "pydicom's bundled test files are missing"
    return PYDICOM_FILES


@pytest.fixture(scope="session")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """A synthetic archive with every defect and conflict planted (read-only: copy to modify)."""
    return make_archive(tmp_path_factory.mktemp("archive") / "arch")


@pytest.fixture(scope="session")
def scanned(archive: Manifest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The planted archive, scanned once into an index (read-only for tests)."""
    index = tmp_path_factory.mktemp("idx") / "planted.duckdb"
    try:
        main(["scan", str(archive.root), "--index", str(index), "--quiet", "--workers", "2"])
    except SystemExit as e:
        assert not e.code
    return index


def rows(index: Path, sql: str, params: dict | None = None) -> list[tuple]:
    con = duckdb.connect(str(index), read_only=True)
    try:
        return con.execute(sql, params or {}).fetchall()
    finally:
        con.close()


def assert_keys_hold(index: Path, tables: tuple[str, ...] = ("files", "plan_auto", "transfers", "verifications")) -> None:
    """Every row of ``tables`` (each holding rows) carries its instance's key, as every writer must set it
    (schema 0031: sop_hash = sop_hash_of(SOPInstanceUID), 0 for a file without a UID)."""
    for table in tables:
        n, wrong = rows(index, f"SELECT count(*), count(*) FILTER (WHERE sop_hash <> sop_hash_of(sop_instance_uid)) "
                               f"FROM {table}")[0]
        assert n > 0 and wrong == 0, f"{table}: {wrong} of {n} rows with another key"


def assert_run_totals(index: Path) -> None:
    """Every send run's totals so far (``send_runs.recorded_*``, schema 0034, kept by the writers of
    ``transfers``) equal what its transfers say: status reads them instead of the run's rows."""
    got = rows(index, "SELECT run_id, coalesce(finished, recorded_until), recorded_stored, recorded_bytes "
                      "FROM send_runs ORDER BY 1")
    want = rows(index, "SELECT r.run_id, coalesce(r.finished, max(t.finished)), "
                       "count(t.outcome) FILTER (WHERE t.outcome IN ('stored', 'warning')), "
                       "coalesce(sum(t.bytes) FILTER (WHERE t.outcome IN ('stored', 'warning')), 0) "
                       "FROM send_runs r LEFT JOIN transfers t USING (run_id) GROUP BY r.run_id, r.finished ORDER BY 1")
    assert got and got == want


def fail_after_script(monkeypatch: pytest.MonkeyPatch, module, script: str, error: Exception) -> None:
    """``module.run_script`` raises ``error`` once ``script`` has run: a fault (DuckDB out of memory at
    a scale no test builds) planted where it would strike, inside the caller's transaction."""
    real = module.run_script

    def failing(con, name, params=None):
        real(con, name, params)
        if name == script:
            raise error

    monkeypatch.setattr(module, "run_script", failing)


@contextmanager
def index_before(path: Path, monkeypatch: pytest.MonkeyPatch, version: int) -> Iterator[duckdb.DuckDBPyConnection]:
    """An index at ``path`` as a pacscopy before schema ``version`` made it (every earlier migration),
    open for the block; once it ends, the next open applies the rest."""
    from pacscopy import index
    from pacscopy.index import open_index

    every = index.migrations()
    monkeypatch.setattr(index, "migrations", lambda: [m for m in every if m[0] < version])
    con = open_index(str(path), create=True)
    try:
        yield con
    finally:
        con.close()
        monkeypatch.setattr(index, "migrations", lambda: every)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("*.sock", "a_fifo.dcm"))
    return dst


def have(cmd: str) -> bool:
    return shutil.which(cmd) is not None or os.path.exists(cmd)


@pytest.fixture
def planned(tmp_path: Path, cli):
    """A small healthy archive (15 instances), scanned and checked: everything is planned 'send'."""
    root = tmp_path / "src"
    make_archive(root, patients=2, studies_per_patient=1, series_per_study=2, instances_per_series=3,
                 defects=False, conflicts=False, specials=False)
    idx = tmp_path / "send.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    return idx


def counts(text: str) -> dict[str, int]:
    """The ``name: N`` lines of a command's summary (send, verify), by name: the content, whatever
    the columns' spacing (a test asserts the figures, not how they are aligned)."""
    import re

    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s*([a-z_ ]+):\s+(\d+)\b", text, re.M)}


def ctrl_c_default() -> None:
    """``preexec_fn`` for a child a test sends Ctrl-C (SIGINT) to: SIGINT back to its default.

    A shell starts a background job (``scripts/test &``) with SIGINT ignored, and an ignored signal
    stays ignored across exec: Python would then never raise KeyboardInterrupt in the child.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
