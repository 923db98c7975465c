"""Scanning through high-latency storage: scripts/latencyfs.py, a FUSE passthrough adding a delay.

The scan reads ahead in threads and lists folders ahead when the storage is
slow; through the mount it must give exactly the index a scan of the same
files on local disk gives, and survive a kill -9 like any scan.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pacscopy.testing.synth import make_archive, make_corpus

from .conftest import rows

LATENCYFS = Path(__file__).resolve().parent.parent / "scripts" / "latencyfs.py"


def _fuse_missing() -> str | None:
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine (FUSE unavailable)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not accessible to this user"
    if shutil.which("fusermount3") is None:
        return "fusermount3 not installed (Debian package fuse3)"
    if importlib.util.find_spec("mfusepy") is None:
        return "the Python package mfusepy is not installed"
    return None


pytestmark = pytest.mark.skipif(_fuse_missing() is not None, reason=_fuse_missing() or "")


@contextmanager
def latency_mount(source: Path, mountpoint: Path, delay_ms: float) -> Iterator[Path]:
    """``source`` seen through latencyfs at ``mountpoint``, every open/read/listing delayed."""
    mountpoint.mkdir()
    log = mountpoint.parent / f"{mountpoint.name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(LATENCYFS), str(source), str(mountpoint),
                                 "--delay-ms", str(delay_ms)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"latencyfs did not mount (exit {proc.poll()}):\n{log.read_text()}")
            time.sleep(0.05)
        yield mountpoint
        assert proc.poll() is None, f"latencyfs died:\n{log.read_text()}"
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


#: Columns that depend on where the files were found, or when.
_PLACE = {"path", "path_bytes", "volume", "root", "first_seen", "scanned_at", "scan_id"}


def _index_by_rel(index: Path, root: Path) -> dict[str, dict[str, object]]:
    cols = [r[0] for r in rows(index, "SELECT column_name FROM information_schema.columns "
                                      "WHERE table_name = 'files' ORDER BY ordinal_position")]
    keep = [c for c in cols if c not in _PLACE]
    prefix = str(root) + "/"
    out = {}
    for r in rows(index, f"SELECT path, {', '.join(keep)} FROM files"):
        assert r[0].startswith(prefix), r[0]
        out[r[0][len(prefix):]] = dict(zip(keep, r[1:]))
    return out


def _linked_corpus(root: Path, files: int, copies: int) -> None:
    """``files`` generated files of 4 KB, hard-linked into ``copies`` folders (quick to make)."""
    make_corpus(root / "c0", files, 4_000)
    for i in range(1, copies):
        shutil.copytree(root / "c0", root / f"c{i}", copy_function=os.link)


def _scan(root: Path, index: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pacscopy", "scan", str(root), "--index", str(index), "-q",
                           "--volume", "v", *extra], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("workers", ["2", "1"])
def test_scan_through_latency_fs_gives_the_local_index(tmp_path: Path, workers: str) -> None:
    """Statuses, hashes, headers, sizes, mtimes: the same through the slow mount as on local disk.

    The planted archive (every defect, special files, non-UTF-8 names) plus enough
    files for the worker pool, in folders enough for the walk to list ahead.
    """
    src = tmp_path / "src"
    make_archive(src / "arch")
    _linked_corpus(src / "many", 100, 3)
    local = tmp_path / "local.duckdb"
    r = _scan(src, local, "--workers", workers)
    assert r.returncode == 0, r.stderr
    with latency_mount(src, tmp_path / "mnt", delay_ms=1) as mnt:
        slow = tmp_path / "slow.duckdb"
        r = _scan(mnt, slow, "--workers", workers)
        assert r.returncode == 0, r.stderr
        want = _index_by_rel(local, src)
        got = _index_by_rel(slow, mnt)
    assert len(want) > 300
    assert {k: v["status"] for k, v in got.items()} == {k: v["status"] for k, v in want.items()}
    assert sum(v["status"] == "ok" for v in got.values()) >= 336
    for rel, row in want.items():
        assert got[rel] == row, rel


def test_kill_minus_9_through_latency_fs_then_rescan_completes(tmp_path: Path) -> None:
    """A scan killed mid-way through the slow mount leaves a usable index; the rescan finishes it."""
    src = tmp_path / "src"
    _linked_corpus(src, 300, 10)
    idx = tmp_path / "k.duckdb"
    # An index that exists already: the scan commits batches as it goes (a first scan
    # reads its first 4,096 files while the index opens, and commits them at once).
    (tmp_path / "empty").mkdir()
    assert _scan(tmp_path / "empty", idx).returncode == 0
    with latency_mount(src, tmp_path / "mnt", delay_ms=2) as mnt:
        cmd = [sys.executable, "-m", "pacscopy", "scan", str(mnt), "--index", str(idx), "-q", "--workers", "2"]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        wal = Path(str(idx) + ".wal")
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
            if wal.exists() and wal.stat().st_size > 150_000:
                break
        killed = proc.poll() is None
        assert killed, "the scan ended before it could be killed: make the corpus bigger"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # usable as it is: it opens, and the rows committed before the kill are whole
        (partial, hashed) = rows(idx, "SELECT count(*), count(xxh3) FROM files")[0]
        assert partial == hashed < 3000
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    (cnt, distinct, ok) = rows(idx, "SELECT count(*), count(DISTINCT path), count(*) FILTER (status = 'ok') FROM files")[0]
    assert cnt == distinct == ok == 3000
    scans = rows(idx, "SELECT finished IS NOT NULL FROM scans ORDER BY scan_id")
    assert scans == [(True,), (False,), (True,)]


def test_reads_go_ahead_in_threads_on_slow_storage_within_the_byte_cap(tmp_path: Path) -> None:
    """Through a 3 ms mount a worker's reads go to threads, several in flight, never over the byte cap."""
    import queue

    from pacscopy.scan.pool import ReadAhead

    src = tmp_path / "src"
    _linked_corpus(src, 60, 1)
    with latency_mount(src, tmp_path / "mnt", delay_ms=3) as mnt:
        paths = sorted(os.fsencode(p) for p in mnt.rglob("*.dcm"))
        chunks: queue.Queue[tuple[list[bytes], list[int]] | None] = queue.Queue()
        for i in range(0, len(paths), 8):
            chunk = paths[i:i + 8]
            chunks.put((chunk, [os.path.getsize(p) for p in chunk]))
        chunks.put(None)
        cap = 5 * 4_500
        reads = ReadAhead(16, cap)
        got = [r for rows in reads.rows(chunks) for r in rows]
    assert [r[1] for r in got] == paths  # every file, in order
    assert all(r[7] == "ok" for r in got)
    assert reads.depth > 1 and reads.most_in_flight > 1
    assert 0 < reads.most_bytes <= cap


def test_listing_ahead_gives_the_serial_walk(tmp_path: Path) -> None:
    """The walk lists folders ahead in threads: same entries, same order as a serial walk."""
    from pacscopy.scan.scan import walk

    src = tmp_path / "src"
    make_archive(src / "arch")
    _linked_corpus(src / "more", 20, 12)
    serial = list(walk(os.fsencode(src), list_ahead=1))
    assert len(serial) > 250
    assert list(walk(os.fsencode(src), list_ahead=8)) == serial
    with latency_mount(src, tmp_path / "mnt", delay_ms=1) as mnt:
        prefix = os.fsencode(mnt)
        ahead = list(walk(prefix, list_ahead=8))
    assert [(e.path[len(prefix):], e.status, e.reason, e.size) for e in ahead] == \
        [(e.path[len(os.fsencode(src)):], e.status, e.reason, e.size) for e in serial]


def test_page_cache_reads_are_not_storage_waits(tmp_path: Path) -> None:
    """On a local disk with the files in the page cache a worker reads inline, never in threads.

    A read's storage wait is its wall time minus its CPU time and run-queue wait. The
    CPU time of the running thread in /proc/thread-self/schedstat is only brought up to
    date at a tick or a switch: a 0.5 MB copy from the page cache (~0.1-0.2 ms) read as
    all wait, and the scan went to 32 threads on a warm local disk (+60 % CPU). On a VM
    the host may still take the CPU away for milliseconds at a time (steal time, which no
    clock of the thread sees) during a whole stretch of reads: one of three tries must read
    every file inline (before the fix, every try went to threads).
    """
    import queue

    from pacscopy.scan.pool import ReadAhead
    from pacscopy.testing.synth import make_corpus

    make_corpus(tmp_path / "c", 200, 500_000)
    paths = sorted(os.fsencode(p) for p in (tmp_path / "c").rglob("*.dcm"))
    for p in paths:  # in the page cache
        with open(p, "rb") as f:
            f.read()
    tries = []
    for _ in range(3):
        chunks: queue.Queue[tuple[list[bytes], list[int]] | None] = queue.Queue()
        for i in range(0, len(paths), 32):
            chunk = paths[i:i + 32]
            chunks.put((chunk, [os.path.getsize(p) for p in chunk]))
        chunks.put(None)
        reads = ReadAhead(32, 64 << 20)
        got = [r for rows in reads.rows(chunks) for r in rows]
        assert len(got) == 200 and all(r[7] == "ok" for r in got)
        tries.append((reads.most_in_flight, reads.wait_s))
        if reads.most_in_flight == 0 and reads.depth == 0:
            break
    assert tries[-1][0] == 0, tries  # (most reads in flight, median read wait) of each try
