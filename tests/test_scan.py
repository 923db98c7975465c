"""Scanning: the planted archive, incremental rescans, crash recovery, permissions."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xxhash

from pacscopy.scan.fileread import entry_row
from pacscopy.testing.synth import make_archive, make_corpus

from .conftest import ctrl_c_default, rows


def _by_rel(index: Path, root: Path) -> dict[str, tuple]:
    prefix = str(root) + "/"
    return {
        r[0][len(prefix):]: r[1:]
        for r in rows(index, "SELECT path, status, reason, path_bytes, xxh3, sop_instance_uid FROM files")
        if r[0].startswith(prefix)
    }


def test_every_planted_file_has_the_expected_status(archive, scanned) -> None:
    got = _by_rel(scanned, archive.root)
    for rel, want in {**archive.expected, **archive.specials}.items():
        assert rel in got, f"{rel} not indexed"
        status, reason = got[rel][0], got[rel][1]
        if want.status == "ok":
            assert status == "ok", (rel, status, reason)
        else:
            assert (status, reason) == (want.status, want.reason), rel
    # nothing unexpected: every indexed file is in the manifest
    assert set(got) == set(archive.expected) | set(archive.specials)


def test_healthy_files_are_all_ok_and_count(archive, scanned) -> None:
    healthy = [r for r, w in archive.expected.items() if w.status == "ok"]
    assert len(healthy) >= 36
    got = _by_rel(scanned, archive.root)
    assert all(got[r][0] == "ok" for r in healthy)


def test_non_utf8_name_is_kept_losslessly(archive, scanned) -> None:
    got = _by_rel(scanned, archive.root)
    rel = "vol1/J\\xe9r\\xf4me_\\xc4rzte.dcm"
    status, _, path_bytes, digest, _ = got[rel]
    assert status == "ok"
    assert b"\xe9" in path_bytes
    with open(path_bytes, "rb") as f:  # the sender can open it from the index
        assert xxhash.xxh3_128_hexdigest(f.read()) == digest
    assert got["vol1/Müller_Ørsted_画像.dcm"][0] == "ok"


def test_index_is_owner_only(scanned) -> None:
    assert stat.S_IMODE(os.stat(scanned).st_mode) == 0o600


def test_scan_summary_and_volume_label(tmp_path, cli, archive) -> None:
    root = tmp_path / "VOL_2004_A"
    make_archive(root, patients=1, studies_per_patient=1, defects=False, conflicts=False, specials=False)
    idx = tmp_path / "i.duckdb"
    r = cli("scan", root, "--index", idx, "--workers", "1")
    assert r.code == 0, r.err
    assert "ok" in r.out and "new" in r.out
    assert {v for (v,) in rows(idx, "SELECT DISTINCT volume FROM files")} == {"VOL_2004_A"}
    r = cli("scan", root, "--index", idx, "--volume", "tape7", "--rehash", "-q")
    assert r.code == 0 and r.out == ""
    assert {v for (v,) in rows(idx, "SELECT DISTINCT volume FROM files")} == {"tape7"}


def test_incremental_rescan(tmp_path, cli) -> None:
    root = tmp_path / "vol"
    make_archive(root, patients=2, studies_per_patient=1, defects=False, conflicts=False, specials=False)
    idx = tmp_path / "i.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    (n,) = rows(idx, "SELECT count(*) FROM files")[0]
    r = cli("scan", root, "--index", idx)
    assert f"0 new, 0 changed, {n} unchanged, 0 missing; read 0 files" in r.out
    files = sorted(p for p in root.rglob("*.dcm") if str(p).isascii())
    first_seen = rows(idx, "SELECT first_seen FROM files WHERE path = $p", {"p": str(files[1])})[0][0]
    files[0].unlink()
    with open(files[1], "ab") as f:
        f.write(b"\0\0")  # changed size
    (root / "vol1" / "new.dcm").write_bytes(files[2].read_bytes())
    r = cli("scan", root, "--index", idx)
    assert f"1 new, 1 changed, {n - 2} unchanged, 1 missing; read 2 files" in r.out
    assert rows(idx, "SELECT status, reason FROM files WHERE path = $p", {"p": str(files[0])}) == [("missing", "vanished")]
    assert rows(idx, "SELECT first_seen FROM files WHERE path = $p", {"p": str(files[1])})[0][0] == first_seen
    r = cli("scan", root, "--index", idx, "--rehash")
    assert f"read {n} files" in r.out
    (cnt, distinct) = rows(idx, "SELECT count(*), count(DISTINCT path) FROM files")[0]
    assert cnt == distinct == n + 1
    # a second root adds to the same index
    other = tmp_path / "other"
    make_archive(other, seed=99, patients=1, studies_per_patient=1, defects=False, conflicts=False, specials=False)
    assert cli("scan", other, "--index", idx, "-q").code == 0
    assert rows(idx, "SELECT count(DISTINCT root) FROM files")[0][0] == 2
    # the missing file comes back
    files[0].write_bytes(files[2].read_bytes())
    r = cli("scan", root, "--index", idx)
    assert "1 changed" in r.out
    assert rows(idx, "SELECT status FROM files WHERE path = $p", {"p": str(files[0])}) == [("ok",)]


def long_scan(tmp_path: Path, idx: Path) -> list[str]:
    """The command line of a scan long enough to interrupt: 16,000 files under tmp_path/corpus.

    Four times 4,000 files (hard links: quick to make), so that the scan still runs when
    the first batches are committed: it reads the first 4096 files while the index opens.
    """
    root = tmp_path / "corpus"
    make_corpus(root / "a", 4000, 20_000)
    for copy in ("b", "c", "d"):
        shutil.copytree(root / "a", root / copy, copy_function=os.link)
    return [sys.executable, "-m", "pacscopy", "scan", str(root), "--index", str(idx), "-q", "--workers", "2"]


def test_kill_minus_9_then_rescan_completes(tmp_path) -> None:
    from pacscopy.index import open_index

    idx = tmp_path / "k.duckdb"
    cmd = long_scan(tmp_path, idx)
    # the index made (every migration) and checkpointed first: the WAL watched below then grows with
    # the scan's own commits only (creating it writes more than 200 KB of WAL under load, before any
    # scan row exists: a kill there left one scan, not two)
    open_index(str(idx), create=True).close()
    wal = Path(str(idx) + ".wal")
    assert not wal.exists() or wal.stat().st_size < 200_000
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    # wait until some batches are committed, then kill without warning
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
        if wal.exists() and wal.stat().st_size > 200_000:
            break
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (cnt, distinct, ok) = rows(idx, "SELECT count(*), count(DISTINCT path), count(*) FILTER (status = 'ok') FROM files")[0]
    assert cnt == distinct == ok == 16000
    scans = rows(idx, "SELECT scan_id, finished IS NOT NULL FROM scans ORDER BY scan_id")
    assert scans[-1][1] is True
    if killed:
        assert len(scans) == 2 and scans[0][1] is False, scans


def test_unreadable_file_and_folder(tmp_path) -> None:
    """Root reads everything, so drop the capabilities that bypass file permissions."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or not setpriv:
        pytest.skip("needs root and setpriv to drop CAP_DAC_OVERRIDE")
    root = tmp_path / "vol"
    make_archive(root, patients=1, studies_per_patient=1, defects=False, conflicts=False, specials=False)
    secret = next(p for p in root.rglob("*.dcm") if str(p).isascii())
    os.chmod(secret, 0o000)
    locked = root / "locked"
    locked.mkdir()
    (locked / "x.dcm").write_bytes(b"x")
    os.chmod(locked, 0o000)
    idx = tmp_path / "p.duckdb"
    try:
        r = subprocess.run(
            [setpriv, "--bounding-set=-dac_override,-dac_read_search", sys.executable, "-m", "pacscopy",
             "scan", str(root), "--index", str(idx), "-q", "--workers", "1"],
            capture_output=True, text=True,
        )
    finally:
        os.chmod(locked, 0o755)
    assert r.returncode == 0, r.stderr
    got = {p: (s, d) for p, s, d in rows(idx, "SELECT path, status, detail FROM files")}
    assert got[str(secret)][0] == "unreadable" and "Permission denied" in got[str(secret)][1]
    assert got[str(locked)][0] == "unreadable" and "cannot list folder" in got[str(locked)][1]
    assert sum(1 for s, _ in got.values() if s == "ok") == len(got) - 2


def test_file_changed_into_fifo_after_walk_does_not_hang(tmp_path) -> None:
    from pacscopy.scan.scan import read_and_inspect

    p = tmp_path / "x.dcm"
    os.mkfifo(p)
    row = read_and_inspect(os.fsencode(p))  # O_NONBLOCK: returns at once
    assert row["status"] == "skipped"
    row = read_and_inspect(os.fsencode(tmp_path / "gone.dcm"))
    assert row["status"] == "unreadable" and "No such file" in row["detail"]


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_die_with_a_killed_scan(tmp_path) -> None:
    """kill -9 of the scanning process leaves no worker behind (they see EOF or a broken pipe)."""
    if not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        pytest.skip("needs /proc/PID/task/PID/children")
    root = tmp_path / "corpus"
    make_corpus(root, 3000, 20_000)
    idx = tmp_path / "k.duckdb"
    proc = subprocess.Popen([sys.executable, "-m", "pacscopy", "scan", str(root), "--index", str(idx), "-q",
                             "--workers", "2"], stderr=subprocess.PIPE)
    workers: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
        time.sleep(0.01)
        workers = _children(proc.pid)
    if proc.poll() is not None:
        pytest.skip("the scan finished before its workers could be seen")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert workers and not any(_alive(w) for w in workers), workers


def test_worker_failure_is_reported(tmp_path, monkeypatch) -> None:
    """A worker that dies mid-scan fails the scan loudly: no file is silently left out."""
    from pacscopy.scan import pool as scanpool

    pool = scanpool.Workers(1)
    try:
        pool.submit([os.fsencode(tmp_path / "nothing.dcm")])
        pool.procs[0].kill()
        pool.submit([os.fsencode(tmp_path / "nothing2.dcm")])
        with pytest.raises(scanpool.WorkerError):
            for _ in pool.results():
                pass
    finally:
        pool.close()


def test_scan_memory_limit_default_and_override(tmp_path, monkeypatch) -> None:
    """A scan caps DuckDB at 128MB unless PACSCOPY_MEMORY_LIMIT says otherwise."""
    from pacscopy.index import open_index
    from pacscopy.scan.scan import SCAN_MEMORY_LIMIT

    monkeypatch.delenv("PACSCOPY_MEMORY_LIMIT", raising=False)
    con = open_index(str(tmp_path / "a.duckdb"), create=True, memory_limit=SCAN_MEMORY_LIMIT, threads=1)
    scan_limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 1
    con.close()
    con = open_index(str(tmp_path / "a.duckdb"))
    default = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    con.close()
    monkeypatch.setenv("PACSCOPY_MEMORY_LIMIT", "300MB")
    con = open_index(str(tmp_path / "a.duckdb"), memory_limit=SCAN_MEMORY_LIMIT)
    override = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    con.close()
    assert scan_limit.startswith("122") and "MiB" in scan_limit, scan_limit  # 128 MB
    assert default.startswith("953") and "MiB" in default, default  # 1 GB
    assert override.startswith("286") and "MiB" in override, override  # 300 MB


def test_ctrl_c_stops_the_scan_and_its_workers(tmp_path) -> None:
    """Ctrl-C (SIGINT to the process group) ends the scan with 130, keeps what was written, leaves no worker."""
    if not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"):
        pytest.skip("needs /proc/PID/task/PID/children")
    idx = tmp_path / "c.duckdb"
    cmd = long_scan(tmp_path, idx)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=ctrl_c_default)
    workers: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
        workers = _children(proc.pid)
        wal = Path(str(idx) + ".wal")
        if len(workers) >= 2 and wal.exists() and wal.stat().st_size > 200_000:
            break
    if proc.poll() is not None:
        pytest.skip("the scan finished before it could be interrupted")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.05)
    assert not any(_alive(w) for w in workers), workers
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert rows(idx, "SELECT count(*), count(*) FILTER (status = 'ok') FROM files")[0] == (16000, 16000)


@pytest.mark.parametrize("early", [False, True])
def test_progress_adds_up_to_the_total(tmp_path, early: bool) -> None:
    """on_total comes first, once; on_progress then counts every file read, also those read early."""
    from pacscopy.scan.scan import begin_scan, scan_root

    root = tmp_path / "corpus"
    make_corpus(root, 300, 3_000)
    calls: list[tuple[str, int, int]] = []
    begun = begin_scan(root, workers=2) if early else None
    try:
        res = scan_root(str(tmp_path / "p.duckdb"), root, workers=2, begun=begun,
                        on_total=lambda n, b: calls.append(("total", n, b)),
                        on_progress=lambda n, b: calls.append(("progress", n, b)))
    finally:
        if begun is not None:
            begun.close()
    totals = [c for c in calls if c[0] == "total"]
    assert len(totals) == 1 and totals[0][1] == 300 == res.files_read == res.new
    progress = [c for c in calls if c[0] == "progress"]
    assert sum(c[1] for c in progress) == 300
    assert sum(c[2] for c in progress) == totals[0][2] == res.bytes_read


def test_progress_while_the_walk_runs(tmp_path, monkeypatch) -> None:
    """Issue 16: on a volume whose walk takes minutes, progress shows before the walk ends:
    the files found so far (on_walk) and the files read so far (on_progress)."""
    import pacscopy.scan.scan as scanmod

    root = tmp_path / "corpus"
    make_corpus(root, 400, 3_000)
    real_walk = scanmod.walk

    def slow_walk(broot: bytes):  # a NAS: every entry costs a round trip
        for e in real_walk(broot):
            time.sleep(0.003)
            yield e

    monkeypatch.setattr(scanmod, "walk", slow_walk)
    monkeypatch.setattr(scanmod, "WALK_REPORT_S", 0.02)
    calls: list[tuple] = []
    scanmod.scan_root(str(tmp_path / "p.duckdb"), root, workers=2,
                      on_walk=lambda found, n, b: calls.append(("walk", found, n, b)),
                      on_total=lambda n, b: calls.append(("total", n, b)),
                      on_progress=lambda n, b: calls.append(("progress", n, b)))
    kinds = [c[0] for c in calls]
    assert kinds[0] == "walk" and calls[0][1] == 0
    before_total = calls[: kinds.index("total")]
    walks = [c for c in before_total if c[0] == "walk"]
    assert len(walks) >= 3, calls
    found = [c[1] for c in walks]
    assert found == sorted(found) and 0 < found[-1] <= 400
    assert all(c[2] <= c[1] for c in walks)  # files to read <= files found
    assert any(c[0] == "progress" for c in before_total), "nothing read was shown before the walk ended"


def test_cli_scan_shows_the_files_found_during_the_walk(tmp_path, monkeypatch, cli) -> None:
    import pacscopy.scan.scan as scanmod

    root = tmp_path / "corpus"
    make_corpus(root, 60, 2_000)
    real_walk = scanmod.walk

    def slow_walk(broot: bytes):
        for e in real_walk(broot):
            time.sleep(0.005)
            yield e

    monkeypatch.setattr(scanmod, "walk", slow_walk)
    monkeypatch.setattr(scanmod, "WALK_REPORT_S", 0.02)
    r = cli("scan", root, "--index", tmp_path / "i.duckdb", "--workers", "1")
    assert r.code == 0, r.err
    assert "(walking: " in r.err and " files found)" in r.err, r.err
    assert "60/60" in r.err, r.err  # the total once the walk has ended


class _Clock:
    """A stand-in for the scan module's ``time``: seconds pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.mark.parametrize(("poller", "hop_cost"), [(False, 1.0), (True, 0.0), (True, 1.0)])
def test_the_writer_hops_only_for_a_waiting_process_and_at_most_a_tenth_of_the_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, poller: bool, hop_cost: float) -> None:
    """The lock-hopping writer keeps the index open while no other process waits for it: a scan alone
    never hops (closing checkpoints the index: 0.4-0.8 s at 200,000 files; hopping every second made
    a scan of 200,000 files take 60 s instead of 33 s). A process that waits (a status polled every
    second) gets in within about a second while a hop is cheap; once it costs more, hops come at least
    twenty times their cost apart: at most about a twentieth of the scan (asserted: under a tenth).
    Every row reaches the index either way."""
    from pacscopy import __version__
    from pacscopy.index import run
    from pacscopy.scan import scan as scan_mod

    clock = _Clock()
    monkeypatch.setattr(scan_mod, "time", clock)
    index = str(tmp_path / "p.duckdb")
    opens: list[float] = []
    waited: list[float] = []  # how long each status waited

    class SlowHop(scan_mod._Hop):
        next_poll = 1001.0  # a status polled every second, from the first second on

        def connect(self, wait: bool = True):  # type: ignore[no-untyped-def]
            clock.now += hop_cost  # closing (the checkpoint) and opening, counted here
            opens.append(clock.now)
            return super().connect(wait)

        def waiting(self) -> bool:
            if not poller or clock.now < self.next_poll:
                return False
            if writer.con is not None:  # asked while the writer holds the index: it lets go now,
                waited.append(clock.now - self.next_poll)  # and the status gets in (and out)
                self.next_poll = clock.now + 1.0
            return True

    hop = SlowHop(index, create=True)
    con = hop.connect()
    scan_id = run(con, "ops/scan/scan_start", {"root": "/vol", "volume": "vol", "rehash": False,
                                               "version": __version__}).fetchone()[0]
    opens.clear()
    writer = scan_mod._Writer(hop, scan_id, "vol", "/vol", con)
    seconds, n = 60.0, 600  # a row every 0.1 s for a minute
    start = clock.now
    for i in range(n):
        clock.now += seconds / n
        writer.add([entry_row(f"/vol/f{i:04d}".encode(), 10, 0, "skipped", "not_regular", None)])
    writer.flush()
    writer.close()
    assert rows(Path(index), "SELECT count(*) FROM files") == [(n,)]
    assert len(opens) == writer.hops
    if not poller:
        assert writer.hops == 0, opens
    elif hop_cost == 0:
        assert writer.hops >= 50, opens  # a status asks a second after the previous one got in ...
        assert len(waited) >= 50 and max(waited) <= 0.25, waited  # ... and gets in at once
    else:
        assert 2 <= writer.hops <= seconds / (10 * hop_cost) + 1, opens
        assert writer.hops * hop_cost <= 0.12 * (clock.now - start)
