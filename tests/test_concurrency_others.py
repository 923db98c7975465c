"""Issue 13: the other commands beside a running send, and the other long writers.

Real processes, not threads: every command runs as its own ``pacscopy``
process against one index file while a long scan or send holds it now and then.
(h13local's tests/test_concurrency.py covers the send itself and status.)
"""

from __future__ import annotations

import os
import shutil
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


def peek_waiting(index: Path, sql: str, timeout: float = 120) -> list[tuple]:
    """:func:`peek` the way a pacscopy command reads: when the index is held, say so in the run folder
    (a scan keeps the index open while nobody waits for it, and lets go for one that does) and retry."""
    from pacscopy import runfolder

    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                got = peek(index, sql)
            except duckdb.CatalogException:  # a new index: not migrated yet
                got = None
            if got is not None:
                return got
            runfolder.want(str(index))
            assert time.monotonic() < deadline, f"the index stayed held for {timeout} s"
            time.sleep(0.05)
    finally:
        runfolder.got(str(index))


def files_rows(index: Path) -> set[tuple]:
    got = peek(index, "SELECT path, size, mtime_ns, xxh3, dataset_xxh3, status, sop_instance_uid FROM files")
    assert got is not None
    return set(got)


# -- scan: a lock-hopping writer ----------------------------------------------------


def test_readers_get_in_while_a_scan_runs(tmp_path: Path) -> None:
    """A scan keeps the index open only while nobody waits for it: pacscopy commands (here `query`, each its
    own process) get in while it runs and see its rows grow."""
    root = tmp_path / "vol1"
    make_corpus(root, 80_000, 1_000, seed=13)  # several seconds of scanning on an idle machine (20,000: 1.2 s)
    # a loaded machine starts each reader process slowly: up to three scans into a fresh index, until
    # one is caught mid-run (once a run ended with readers that had seen only 0, then all 80,000)
    for attempt in range(3):
        index = tmp_path / f"p{attempt}.duckdb"
        scan = start("scan", root, "--index", index, "--quiet", "--workers", "1")
        seen: list[int] = []
        try:
            while scan.poll() is None:
                if not index.exists():
                    time.sleep(0.05)
                    continue
                r = pacscopy("query", "SELECT count(*) AS n FROM files", "--index", index, "--format", "csv")
                if r.returncode == 0:  # (the scan may have created the file and not yet the tables)
                    seen.append(int(r.stdout.strip().splitlines()[-1]))
            out, err = scan.communicate()
            assert scan.returncode == 0, err
        finally:
            if scan.poll() is None:
                scan.kill()
                scan.wait()
        assert len(files_rows(index)) == 80_000
        assert seen == sorted(seen), seen  # the count went up, never down
        partial = [n for n in seen if 0 < n < 80_000]
        if partial:
            break
    assert partial, seen  # got in mid-scan


def test_scan_killed_mid_run_is_completed_by_the_next_scan(tmp_path: Path) -> None:
    """kill -9 of a scan loses only the rows it buffered; the next scan reads those files again."""
    root = tmp_path / "vol1"
    # 8 x 6,000 files (hard links: quick to make) so that the scan still runs after its first commits
    # even on an idle machine, where 6,000 files were all written in the scan's last stretch
    make_corpus(root / "a", 6000, 2_000, seed=14)
    for copy in "bcdefgh":
        shutil.copytree(root / "a", root / copy, copy_function=os.link)
    total = 8 * 6000
    index = tmp_path / "p.duckdb"
    scan = start("scan", root, "--index", index, "--quiet", "--workers", "1")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and scan.poll() is None:
            got = peek_waiting(index, "SELECT count(*) FROM files") if index.exists() else None
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
    assert partial is not None and 1000 <= partial[0][0] < total, partial
    again = pacscopy("scan", root, "--index", index, "--quiet", "--workers", "2")
    assert again.returncode == 0, again.stderr
    reference = tmp_path / "ref.duckdb"
    ref = pacscopy("scan", root, "--index", reference, "--quiet", "--workers", "2")
    assert ref.returncode == 0, ref.stderr
    assert files_rows(index) == files_rows(reference)
    assert len(files_rows(index)) == total
    # the killed scan stays unfinished in the books; the rescan finished
    scans = peek(index, "SELECT scan_id, finished IS NOT NULL FROM scans ORDER BY scan_id")
    assert scans == [(1, False), (2, True)]


# -- beside a running send ----------------------------------------------------------


def ok(r: subprocess.CompletedProcess[str], *codes: int) -> subprocess.CompletedProcess[str]:
    """The command succeeded (exit 0, or one of ``codes``) and said no error."""
    assert r.returncode in (0, *codes), (r.args, r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    assert "error:" not in r.stderr, r.stderr
    return r


def peek_wait(index: Path, sql: str, timeout: float = 60) -> list[tuple]:
    """:func:`peek`, retried while a send merges (each merge holds the index for a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        got = peek(index, sql)
        if got is not None:
            return got
        assert time.monotonic() < deadline, f"the index stayed held for {timeout} s"
        time.sleep(0.05)


def stored_count(index: Path) -> int:
    """The stored count as a user sees it: ``pacscopy query`` from another process."""
    r = ok(pacscopy("query", "SELECT count(*) AS n FROM stored", "--index", index, "--format", "csv"))
    return int(r.stdout.strip().splitlines()[-1])


def planned_index(tmp_path: Path, files: int, size: int, seed: int) -> Path:
    make_corpus(tmp_path / "vol1", files, size, seed=seed)
    index = tmp_path / "p.duckdb"
    ok(pacscopy("scan", tmp_path / "vol1", "--index", index, "-q"))
    ok(pacscopy("check", "--index", index, "-q"))
    return index


def stored_once(index: Path, target: str) -> dict[str, int]:
    """Per SOPInstanceUID, how many times it is recorded stored on ``target``."""
    got = peek_wait(index, f"SELECT sop_instance_uid, count(*) FROM transfers WHERE target = '{target}' "
                           "AND outcome IN ('stored', 'warning') GROUP BY 1")
    return dict(got)


def wait_sending(send: subprocess.Popen[str], storage: Path, n: int = 5, timeout: float = 120) -> None:
    """Until the target has received ``n`` files from the running send."""
    deadline = time.monotonic() + timeout
    while sum(1 for _ in storage.rglob("*") if _.is_file()) < n:
        assert send.poll() is None, send.communicate()
        assert time.monotonic() < deadline, "the send did not get going"
        time.sleep(0.1)


def finish(send: subprocess.Popen[str], timeout: float = 600) -> str:
    out, err = send.communicate(timeout=timeout)
    assert send.returncode == 0, (out[-2000:], err[-2000:])
    return out


def test_other_commands_and_a_delta_scan_and_check_while_a_send_runs(tmp_path: Path) -> None:
    """From other processes while a send runs: query, status, report, reconcile, decide, map, a delta scan of a
    new volume and check all succeed; the stored count never goes down; the send completes, and the
    books are exact afterwards (each instance stored once, the new volume by the next send)."""
    from .peers import storescp

    index = planned_index(tmp_path, 240, 30_000, seed=31)
    vol1 = {r[0] for r in peek_wait(index, "SELECT sop_instance_uid FROM files")}
    make_corpus(tmp_path / "vol2", 30, 20_000, seed=32)  # restored while the send runs
    mapping = tmp_path / "map.csv"
    mapping.write_text("old_id,new_id\nNOT-IN-THIS-ARCHIVE,NEW-1\n")
    with storescp(tmp_path) as peer:
        # ~7 MB at 120 KB/s: about a minute of sending
        send = start("send", "--target", peer.target, "--index", index, "-q", "--associations", "1",
                     "--max-rate", "120KB/s")
        try:
            wait_sending(send, peer.storage)
            counts = [stored_count(index)]
            ok(pacscopy("scan", tmp_path / "vol2", "--index", index, "-q"))
            counts.append(stored_count(index))
            vol2 = sorted(r[0] for r in peek_wait(index, "SELECT sop_instance_uid FROM files WHERE volume = 'vol2'"))
            assert len(vol2) == 30
            ok(pacscopy("decide", "--sop", vol2[0], "--action", "skip", "--note", "test: not this one",
                        "--index", index))
            ok(pacscopy("check", "--index", index, "-q"))
            counts.append(stored_count(index))
            assert send.poll() is None, "the send ended before the delta scan and check were done: slow it down"
            ok(pacscopy("report", "--index", index))
            ok(pacscopy("status", "--target", peer.target, "--index", index))
            counts.append(stored_count(index))
            ok(pacscopy("reconcile", "--target", peer.target, "--index", index, "--no-query"), 1)
            ok(pacscopy("map", "--csv", mapping, "--index", index))
            counts.append(stored_count(index))
            assert counts == sorted(counts) and counts[-1] > 0, counts
            finish(send)
        finally:
            if send.poll() is None:
                send.kill()
                send.wait()
        once = stored_once(index, peer.target)
        assert set(once) == vol1 and set(once.values()) == {1}
        # the next send sends the new volume, less the instance decided skip
        r = ok(pacscopy("send", "--target", peer.target, "--index", index, "-q"))
    once = stored_once(index, peer.target)
    assert set(once) == vol1 | set(vol2[1:]) and set(once.values()) == {1}, r.stdout
    assert stored_count(index) == 240 + 29


def hold(index: Path) -> subprocess.Popen[str]:
    """A user's duckdb session: a process holding the index open read-only until told to let go.

    (The ``duckdb`` CLI from PyPI, duckdb-cli 1.5.6, cannot open files of pacscopy's DuckDB 2.0:
    a Python process of the same DuckDB holds the same lock.)
    """
    script = ("import sys, time, duckdb\n"
              "while True:\n"
              "    try:\n"
              f"        con = duckdb.connect({str(index)!r}, read_only=True); break\n"
              "    except duckdb.Error: time.sleep(0.02)\n"
              "print(con.execute('SELECT count(*) FROM transfers').fetchone()[0], flush=True)\n"
              "sys.stdin.readline()\n")
    p = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    p.stdout.readline()
    return p


def test_an_open_duckdb_session_and_a_long_query_do_not_stall_a_send(tmp_path: Path) -> None:
    """While a session holds the index (and then a long query runs) the send keeps sending and
    journaling; its merges wait; once the index is free everything is merged, each instance once."""
    from .peers import storescp

    index = planned_index(tmp_path, 200, 30_000, seed=33)
    with storescp(tmp_path) as peer:
        send = start("send", "--target", peer.target, "--index", index, "-q", "--associations", "1",
                     "--max-rate", "300KB/s")
        try:
            wait_sending(send, peer.storage)
            session = hold(index)
            try:
                journal = next((index.parent / (index.name + ".run")).glob("journal-*.jsonl"))
                before = (len(list(peer.storage.iterdir())), journal.stat().st_size)
                time.sleep(6)
                after = (len(list(peer.storage.iterdir())), journal.stat().st_size)
                assert send.poll() is None
            finally:
                session.stdin.write("\n")  # type: ignore[union-attr]
                session.stdin.flush()  # type: ignore[union-attr]
                session.wait(timeout=30)
            # ~1.5 MB in 6 s at 300 KB/s: the send went on, and journaled what it stored
            assert after[0] >= before[0] + 10 and after[1] > before[1], (before, after)
            # a long query (a few seconds: it holds the index all the while) from another process
            t = time.monotonic()
            ok(pacscopy("query", "SELECT count(*) FROM range(400000000) r, (SELECT 1) s WHERE r.range % 7 = 3",
                        "--index", index))
            during = (len(list(peer.storage.iterdir())), time.monotonic() - t)
            finish(send)
        finally:
            if send.poll() is None:
                send.kill()
                send.wait()
        assert during[0] > after[0]
        once = stored_once(index, peer.target)
    assert len(once) == 200 and set(once.values()) == {1}
    assert peek_wait(index, "SELECT count(*), bool_and(finished) FROM journal_merges") == [(1, True)]


def test_verify_while_a_send_to_the_same_target_runs(tmp_path: Path) -> None:
    """verify holds the index only to read its candidates and to record: run during a send to the
    same target, it verifies what is recorded stored so far; the send goes on and completes."""
    from .peers import orthanc

    index = planned_index(tmp_path, 120, 30_000, seed=34)
    with orthanc(tmp_path) as peer:
        send = start("send", "--target", peer.target, "--index", index, "-q", "--associations", "1",
                     "--max-rate", "200KB/s")
        try:
            deadline = time.monotonic() + 120
            while stored_count(index) < 10:
                assert send.poll() is None and time.monotonic() < deadline, send.communicate()
                time.sleep(0.2)
            r = ok(pacscopy("verify", "--target", peer.target, "--index", index, "--mode", "find", "-q"))
            first = int(r.stdout.split(": ")[1].split()[0])  # "verify find against T: N instances checked"
            assert 10 <= first < 120 and f"verified:          {first}" in r.stdout, r.stdout
            assert send.poll() is None, "the send ended before verify was done: slow it down"
            finish(send)
        finally:
            if send.poll() is None:
                send.kill()
                send.wait()
        r = ok(pacscopy("verify", "--target", peer.target, "--index", index, "--mode", "find", "-q"))
        assert "120 instances checked" in r.stdout and "verified:          120" in r.stdout, r.stdout
    assert set(stored_once(index, peer.target).values()) == {1}
    got = peek_wait(index, "SELECT count(*), count(DISTINCT sop_instance_uid) FROM verifications")
    assert got == [(first + 120, 120)]


def test_a_killed_verify_keeps_what_it_checked_and_the_rerun_does_not_redo_it(tmp_path: Path) -> None:
    """verify records its outcomes as it goes (its journal, merged like a send's): kill -9 keeps what it
    checked, and the next verify of the same target and mode takes the run up again, checking only the
    rest. A second verify of the same target and mode meanwhile is refused, naming the first."""
    from .peers import orthanc

    n = 600  # enough that the verify still runs after the refused second one (150 were done by then on an idle machine)
    index = planned_index(tmp_path, n, 20_000, seed=35)
    run_dir = Path(str(index) + ".run")
    with orthanc(tmp_path) as peer:
        ok(pacscopy("send", "--target", peer.target, "--index", index, "-q"))
        v = start("verify", "--target", peer.target, "--index", index, "--mode", "retrieve", "-q")
        try:
            deadline = time.monotonic() + 180
            while not any(b'"k":"verifications"' in j.read_bytes()
                          for j in run_dir.glob(f"journal-verify-*-{v.pid}.jsonl")):
                assert v.poll() is None, v.communicate()
                assert time.monotonic() < deadline, "verify recorded nothing while it ran"
                time.sleep(0.05)
            second = pacscopy("verify", "--target", peer.target, "--index", index, "--mode", "retrieve", "-q")
            assert v.poll() is None, "verify ended before it was killed: slow it down"
            v.kill()
            v.wait()
        finally:
            if v.poll() is None:
                v.kill()
                v.wait()
        assert second.returncode == 2, second
        assert second.stderr.startswith(f"pacscopy: error: a verify --mode retrieve of {peer.target} from index "
                                        f"{index} is already running (pid {v.pid} on "), second.stderr
        assert list(run_dir.glob("journal-verify-*")), "the killed verify left its journal"
        # the next command that opens the index merges what the killed verify recorded
        ok(pacscopy("query", "SELECT 1", "--index", index))
        kept = peek_wait(index, "SELECT count(*), count(DISTINCT sop_instance_uid) FROM verifications")[0]
        assert 0 < kept[0] == kept[1] < n, kept
        assert peek_wait(index, "SELECT run_id, finished IS NULL FROM verify_runs") == [(1, True)]
        r = ok(pacscopy("verify", "--target", peer.target, "--index", index, "--mode", "retrieve", "-q"))
        assert (f"{n} instances checked ({kept[0]} by run 1 before it was interrupted: not checked again)"
                in r.stdout), r.stdout
        assert f"verified:          {n}" in r.stdout, r.stdout
    # each instance checked once, over the two processes; one run, finished
    assert peek_wait(index, "SELECT count(*), count(DISTINCT sop_instance_uid), bool_and(outcome = 'verified') "
                            "FROM verifications") == [(n, n, True)]
    assert peek_wait(index, "SELECT run_id, resumed, finished IS NOT NULL, checked FROM verify_runs") == [(1, 1, True, n)]
    assert not list(run_dir.glob("journal-*"))


def test_two_scans_of_one_root_are_refused_two_roots_scan_side_by_side(tmp_path: Path) -> None:
    """One scan per root (a run-folder lock on its real path): a second scan of a root being scanned is
    refused naming the first; a scan of another root runs beside it, and both complete.

    The first scan is held, not raced: once it has written, the test holds the index open read-only
    (as a user's duckdb session would), so the scan waits for it at its next write, whatever the
    machine's speed, while the others run.
    """
    from pacscopy import runfolder

    big, small = tmp_path / "vol1", tmp_path / "vol2"
    make_corpus(big / "a", 5000, 1_000, seed=15)
    for copy in "bcdefghijklmnopqrstuvwx":  # 120,000 files (hard links): many batches, far from done at its first
        # write (60,000 were all written at once on a quiet machine)
        shutil.copytree(big / "a", big / copy, copy_function=os.link)
    make_corpus(small, 300, 1_000, seed=16)
    index = tmp_path / "p.duckdb"
    scan = start("scan", big, "--index", index, "--quiet", "--workers", "1")
    other = None
    try:
        deadline = time.monotonic() + 240
        held = None
        while held is None:  # ask the scan to let go (it keeps the index while nobody waits), then keep it
            assert scan.poll() is None, scan.communicate()
            assert time.monotonic() < deadline, "the scan did not get going"
            runfolder.want(str(index))
            try:
                con = duckdb.connect(str(index), read_only=True)
            except duckdb.Error:
                time.sleep(0.05)
                continue
            try:
                written = con.execute("SELECT count(*) FROM files").fetchone()[0]
            except duckdb.CatalogException:  # a new index: not migrated yet
                written = 0
            if written:
                held = con
            else:
                con.close()
                time.sleep(0.05)
        runfolder.got(str(index))
        try:
            assert written < 120_000, written
            twice = pacscopy("scan", big, "--index", index, "--quiet")  # refused at once, not after a wait
            other = start("scan", small, "--index", index, "--quiet")
            # the other root's scan took its lock and now waits for the index, and so does the first at its
            # next write (it cannot end without one): both running at once
            while not {scan.pid, other.pid} <= set(runfolder.waiting(str(index))):
                assert other.poll() is None, other.communicate()
                assert scan.poll() is None, scan.communicate()
                assert time.monotonic() < deadline, "the scans never both waited for the index"
                time.sleep(0.05)
        finally:
            held.close()
        out, err = scan.communicate(timeout=600)
        assert scan.returncode == 0, err
        o_out, o_err = other.communicate(timeout=600)
        assert other.returncode == 0, o_err
    finally:
        for p in (scan, other):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert twice.returncode == 2, twice
    assert twice.stderr.startswith(f"pacscopy: error: a scan of {os.path.realpath(big)} into index {index} is "
                                   f"already running (pid {scan.pid} on "), twice.stderr
    assert peek_wait(index, "SELECT count(*) FROM files") == [(120_300,)]
    assert not list(Path(str(index) + ".run").glob("scan-*.lock"))


def test_probe_does_not_hold_the_index_while_it_asks_the_target(tmp_path: Path) -> None:
    """probe reads the pairs, closes the index, asks the target, and opens it again only to record: a
    query gets in (without waiting) while a target keeps the probe waiting."""
    import socket

    index = planned_index(tmp_path, 20, 2_000, seed=36)
    silent = socket.socket()  # accepts the connection, never answers the association request
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    silent.settimeout(120)
    port = silent.getsockname()[1]
    probe = start("probe", "--target", f"SILENT@127.0.0.1:{port}", "--index", index, "--timeout", "20")
    try:
        conn, _ = silent.accept()  # the probe is in its network work now
        t0 = time.monotonic()
        r = subprocess.run([*PACSCOPY, "query", "SELECT count(*) AS n FROM files", "--index", str(index),
                            "--format", "csv"], capture_output=True, text=True, timeout=120,
                           env={**_env(), "PACSCOPY_LOCK_WAIT": "0"})
        assert probe.poll() is None, "the probe ended before the query ran"
        ok(r)
        assert r.stdout.strip().splitlines()[-1] == "20"
        out, err = probe.communicate(timeout=120)
        conn.close()
    finally:
        silent.close()
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    assert probe.returncode != 0 and err.startswith("pacscopy: error: "), err
    assert time.monotonic() - t0 < 120
