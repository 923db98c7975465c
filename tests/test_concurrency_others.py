"""Issue 13: the other commands beside a running send, and the other long writers.

Real processes, not threads: every command runs as its own ``pacscopy``
process against one index file while a long scan or send holds it now and then.
(h13local's tests/test_concurrency.py covers the send itself and status.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from pacscopy.testing.synth import make_corpus

PACSCOPY = [sys.executable, "-m", "pacscopy"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PACSCOPY_INDEX", None)
    return env


def start(*args: str | Path) -> subprocess.Popen[str]:
    """A pacscopy command in a process of its own (stdout and stderr captured)."""
    return subprocess.Popen([*PACSCOPY, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())


def pacscopy(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PACSCOPY, *map(str, args)], capture_output=True, text=True, env=_env(), timeout=timeout)


def peek(index: Path, sql: str) -> list[tuple] | None:
    """Read the index the way a user's duckdb session would; None while another process holds it."""
    try:
        con = duckdb.connect(str(index), read_only=True)
    except duckdb.Error as e:
        assert "lock" in str(e).lower(), e
        return None
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def files_rows(index: Path) -> set[tuple]:
    got = peek(index, "SELECT path, size, mtime_ns, xxh3, dataset_xxh3, status, sop_instance_uid FROM files")
    assert got is not None
    return set(got)


# -- scan: a lock-hopping writer ----------------------------------------------------


def test_readers_get_in_while_a_scan_runs(tmp_path: Path) -> None:
    """A scan holds the index only to write a batch: readers see its rows grow while it runs."""
    root = tmp_path / "vol1"
    make_corpus(root, 6000, 2_000, seed=13)
    index = tmp_path / "p.duckdb"
    scan = start("scan", root, "--index", index, "--quiet", "--workers", "1")
    seen: list[int] = []
    try:
        while scan.poll() is None:
            got = peek(index, "SELECT count(*) FROM files") if index.exists() else None
            if got is not None:
                seen.append(got[0][0])
            time.sleep(0.05)
        out, err = scan.communicate()
        assert scan.returncode == 0, err
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait()
    assert files_rows(index) and len(files_rows(index)) == 6000
    # got in several times mid-scan, and saw the count go up, never down
    partial = [n for n in seen if 0 < n < 6000]
    assert len(set(partial)) >= 2, seen
    assert seen == sorted(seen), seen


def test_scan_killed_mid_run_is_completed_by_the_next_scan(tmp_path: Path) -> None:
    """kill -9 of a scan loses only the rows it buffered; the next scan reads those files again."""
    root = tmp_path / "vol1"
    make_corpus(root, 6000, 2_000, seed=14)
    index = tmp_path / "p.duckdb"
    scan = start("scan", root, "--index", index, "--quiet", "--workers", "1")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and scan.poll() is None:
            got = peek(index, "SELECT count(*) FROM files") if index.exists() else None
            if got is not None and got[0][0] >= 1000:
                break
            time.sleep(0.05)
        assert scan.poll() is None, "the scan ended before it could be killed: make the corpus bigger"
        scan.send_signal(signal.SIGKILL)
        scan.wait()
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.wait()
    time.sleep(0.5)  # the killed scan's worker processes notice and exit
    partial = peek(index, "SELECT count(*) FROM files")
    assert partial is not None and 1000 <= partial[0][0] < 6000, partial
    again = pacscopy("scan", root, "--index", index, "--quiet", "--workers", "2")
    assert again.returncode == 0, again.stderr
    reference = tmp_path / "ref.duckdb"
    ref = pacscopy("scan", root, "--index", reference, "--quiet", "--workers", "2")
    assert ref.returncode == 0, ref.stderr
    assert files_rows(index) == files_rows(reference)
    assert len(files_rows(index)) == 6000
    # the killed scan stays unfinished in the books; the rescan finished
    scans = peek(index, "SELECT scan_id, finished IS NOT NULL FROM scans ORDER BY scan_id")
    assert scans == [(1, False), (2, True)]
