"""Issue 13: concurrent use of one index on one machine, with real processes.

The index is held only briefly by each command (open_index waits for it, then
names who holds it); a send records through its journal and merges it; one
send per target. Other commands' tests under concurrency: test_concurrency_others.py.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pacscopy import index as idxmod
from pacscopy import runfolder
from pacscopy.errors import IndexBusyError, TargetBusyError

PY = sys.executable


def pacscopy(*args: object, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real CLI in its own process."""
    return subprocess.run([PY, "-m", "pacscopy", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def holder(index: Path, code: str, command: str = "pacscopy check") -> subprocess.Popen:
    """A process that opens the index as pacscopy does, runs ``code`` (with ``con``), says 'ready' and waits for stdin."""
    script = (f"import sys\nfrom pacscopy import index, runfolder\nrunfolder.COMMAND = {command!r}\n{code}\n"
              "print('ready', flush=True)\nsys.stdin.readline()\n")
    p = subprocess.Popen([PY, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PACSCOPY_INDEX": str(index)})
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.strip() == "ready", line
    return p


def release(p: subprocess.Popen) -> None:
    if p.poll() is None:
        assert p.stdin is not None
        p.stdin.write("\n")
        p.stdin.flush()
    p.wait(timeout=30)


# -- open_index waits, then names the holder --------------------------------------------

def test_a_held_index_is_waited_for_then_refused_naming_the_holder(planned: Path) -> None:
    p = holder(planned, "con = index.open_index(wait=0)")
    try:
        t0 = time.monotonic()
        r = pacscopy("status", "--target", "X@127.0.0.1:104", "--index", planned, env={"PACSCOPY_LOCK_WAIT": "1.5"})
        waited = time.monotonic() - t0
    finally:
        release(p)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith("pacscopy: index ") and "waiting up to 1.5 s" in lines[0], r.stderr
    assert len(lines) == 2 and lines[1].startswith("pacscopy: error: index "), r.stderr
    assert f"pid {p.pid}" in lines[1] and "'pacscopy check'" in lines[1] and "waited 1.5 s" in lines[1], lines[1]
    assert "Traceback" not in r.stderr
    assert waited >= 1.5


def test_the_wait_ends_when_the_holder_lets_go(planned: Path) -> None:
    p = holder(planned, "con = index.open_index(wait=0)")
    got: list[str] = []
    try:
        import threading

        threading.Timer(1.0, release, args=(p,)).start()
        con = idxmod.open_index(str(planned), read_only=True, wait=30, on_wait=got.append)
        n = con.execute("SELECT count(*) FROM files").fetchone()
        con.close()
    finally:
        release(p)
    assert n is not None and n[0] == 15
    assert len(got) == 1 and f"pid {p.pid}" in got[0], got


def test_a_duckdb_session_holding_the_index_is_named_as_such(planned: Path) -> None:
    p = holder(planned, "import duckdb; con = duckdb.connect(index.default_index_path())")
    try:
        with pytest.raises(IndexBusyError, match=rf"in use by process {p.pid} \(python[0-9.]*; not a pacscopy "
                                                 r"command, e.g. a duckdb session\); did not wait"):
            idxmod.open_index(str(planned), wait=0)
    finally:
        release(p)


def test_a_bad_lock_wait_is_one_line(planned: Path) -> None:
    r = pacscopy("status", "--target", "X@127.0.0.1:104", "--index", planned, env={"PACSCOPY_LOCK_WAIT": "soon"})
    assert r.returncode == 2
    assert r.stderr.strip() == ("pacscopy: error: PACSCOPY_LOCK_WAIT='soon' is not a number of seconds "
                                "(e.g. 60, or 0: do not wait)")


# -- the run folder ---------------------------------------------------------------------

def test_the_run_folder_is_owner_only_and_says_who_opened_the_index(planned: Path) -> None:
    r = pacscopy("status", "--target", "X@127.0.0.1:104", "--index", planned)
    assert r.returncode == 0, r.stderr
    d = Path(str(planned) + ".run")
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    files = list(d.iterdir())
    assert files, "no record"
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    # the records of processes that ended are stale: the next process clears them
    p = holder(planned, "con = index.open_index(wait=0)")
    rec = json.loads((d / f"proc-{p.pid}.json").read_text())
    assert rec["pid"] == p.pid and rec["host"] and rec["started"] and rec["command"] == "pacscopy check"
    release(p)
    assert pacscopy("status", "--target", "X@127.0.0.1:104", "--index", planned).returncode == 0
    assert not (d / f"proc-{p.pid}.json").exists()


# -- one send per target ----------------------------------------------------------------

def test_a_second_send_to_the_same_target_is_refused_naming_the_first(planned: Path) -> None:
    target = "STORESCP@127.0.0.1:11112"
    p = holder(planned, f"lock = runfolder.lock_target(index.default_index_path(), {target!r}); "
                        "lock.update(run_id=7)", command="pacscopy send --target " + target)
    try:
        r = pacscopy("send", "--target", target, "--index", planned, "-q")
        with pytest.raises(TargetBusyError, match=rf"pid {p.pid} on .* since .*, run 7"):
            runfolder.lock_target(str(planned), target)
        running = runfolder.running_sends(str(planned))
    finally:
        release(p)
    assert r.returncode == 2, r
    assert r.stderr.startswith(f"pacscopy: error: a send to {target} from index {planned} is already running (pid "
                               f"{p.pid} on "), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert [(s.target, s.pid, s.run_id) for s in running] == [(target, p.pid, 7)]
    # released (the holder ended): a send may start, and none is running any more
    assert runfolder.running_sends(str(planned)) == []
    lock = runfolder.lock_target(str(planned), target)
    lock.release()


def test_a_send_that_has_not_recorded_its_run_yet_is_shown_starting(planned: Path) -> None:
    """A send holds its target's lock from its start and records its run only after it has opened the index
    and counted its queue: meanwhile status says it is starting, never 'run None', and a second send is
    refused naming no run."""
    target = "STORESCP@127.0.0.1:11112"
    p = holder(planned, f"lock = runfolder.lock_target(index.default_index_path(), {target!r})",
               command="pacscopy send --target " + target)
    try:
        r = pacscopy("status", "--target", target, "--index", planned)
        second = pacscopy("send", "--target", target, "--index", planned, "-q")
    finally:
        release(p)
    assert r.returncode == 0, r.stderr
    assert f"  a send to {target} is starting (no run recorded yet, pid {p.pid} on " in r.stdout, r.stdout
    assert "run None" not in r.stdout, r.stdout
    assert second.returncode == 2, second
    assert second.stderr.startswith(f"pacscopy: error: a send to {target} from index {planned} is already "
                                    f"running (pid {p.pid} on "), second.stderr
    assert ", run " not in second.stderr, second.stderr


def test_a_second_send_is_refused_at_once_while_the_first_holds_the_index(planned: Path) -> None:
    """The refusal comes before the index is opened: a second send does not wait for the first one's merge
    (seconds on a busy machine) only to be refused after it (the loaded polled run's stray 'waiting' line)."""
    target = "STORESCP@127.0.0.1:11112"
    p = holder(planned, f"con = index.open_index(wait=0); lock = runfolder.lock_target(index.default_index_path(), "
                        f"{target!r}); lock.update(run_id=7)", command="pacscopy send --target " + target)
    try:
        t0 = time.monotonic()
        r = pacscopy("send", "--target", target, "--index", planned, "-q", env={"PACSCOPY_LOCK_WAIT": "20"})
        took = time.monotonic() - t0
    finally:
        release(p)
    assert r.returncode == 2, r
    assert r.stderr.startswith(f"pacscopy: error: a send to {target} from index {planned} is already running (pid "
                               f"{p.pid} on "), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and took < 20


# -- the journal: exactly once under kill -9, a torn last line ---------------------------

from pacscopy.journal import Journal  # noqa: E402
from pacscopy.testing.synth import make_archive  # noqa: E402

from .conftest import assert_run_totals, rows  # noqa: E402
from .peers import orthanc, storescp  # noqa: E402


@pytest.fixture
def bigger(tmp_path: Path) -> Path:
    """240 instances, scanned and checked (all planned 'send'), by the real CLI."""
    root = tmp_path / "src"
    make_archive(root, patients=4, studies_per_patient=2, series_per_study=3, instances_per_series=10,
                 defects=False, conflicts=False, specials=False)
    idx = tmp_path / "big.duckdb"
    assert pacscopy("scan", root, "--index", idx, "-q").returncode == 0
    assert pacscopy("check", "--index", idx, "-q").returncode == 0
    return idx


def _stored_once(index: Path, target: str) -> tuple[int, int, int]:
    """(instances to send, instances stored, instances stored more than once) for ``target``."""
    planned = rows(index, "SELECT count(*) FROM plan WHERE disposition = 'send'")[0][0]
    stored = rows(index, "SELECT count(DISTINCT sop_instance_uid) FROM transfers WHERE target = $t "
                         "AND outcome IN ('stored', 'warning')", {"t": target})[0][0]
    twice = rows(index, "SELECT count(*) FROM (SELECT sop_instance_uid FROM transfers WHERE target = $t "
                        "AND outcome IN ('stored', 'warning') GROUP BY 1 HAVING count(*) > 1)", {"t": target})[0][0]
    return planned, stored, twice


def _journals(index: Path) -> list[Path]:
    return sorted(Path(str(index) + ".run").glob("journal-*"))


def test_kill_9_at_any_moment_then_resume_stores_every_instance_exactly_once(bigger: Path, tmp_path: Path) -> None:
    import random

    rnd = random.Random(13)
    rate = f"{max(1, rows(bigger, 'SELECT sum(size) FROM files')[0][0] // 30 // 1000)}KB/s"  # about 30 s a send
    with storescp(tmp_path) as peer:
        kills = 0
        for _ in range(5):
            p = subprocess.Popen([PY, "-m", "pacscopy", "send", "--target", peer.target, "--index", str(bigger),
                                  "-q", "--associations", "2", "--max-rate", rate],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            # kill -9 at a random moment: at its start, or while it sends (during and between merges,
            # mid-journal-write)
            if kills:
                deadline = time.monotonic() + 120
                while p.poll() is None and time.monotonic() < deadline and \
                        not any(j.name.endswith(f"-{p.pid}.jsonl") and j.stat().st_size > 2000 for j in _journals(bigger)):
                    time.sleep(0.05)
            time.sleep(rnd.uniform(0.0, 2.0))
            if p.poll() is None:
                p.kill()
                kills += 1
            p.wait(timeout=60)
            assert peer.alive()
        assert kills >= 3
        assert _journals(bigger), "the killed sends left their journals"
        idxmod.open_index(str(bigger)).close()  # merges them
        assert _journals(bigger) == []
        sent_before = _stored_once(bigger, peer.target)[1]
        r = pacscopy("send", "--target", peer.target, "--index", bigger, "-q")
        assert r.returncode == 0, r.stdout + r.stderr
    planned, stored, twice = _stored_once(bigger, peer.target)
    assert planned >= 240
    assert 0 < sent_before < planned, "the kills should leave part of the work done"
    assert stored == planned and twice == 0
    assert _journals(bigger) == []
    assert not list(Path(str(bigger) + ".run").glob("spool-*"))
    merged = rows(bigger, "SELECT count(*), count(*) FILTER (WHERE merged_by <> pid) FROM journal_merges")[0]
    assert merged[0] >= kills, merged  # every killed send that got as far as its journal, and the last
    # each run's totals so far, as status shows them, kept by the merges (those of killed runs by another process)
    assert_run_totals(bigger)
    assert rows(bigger, "SELECT count(*) FROM send_runs WHERE finished IS NULL AND recorded_stored > 0")[0][0] > 0
    # the header of what was sent is the file row's, as after a send that held the index
    bad = rows(bigger, "SELECT count(*) FROM transfers t JOIN files f USING (path) WHERE t.outcome = 'stored' "
                       "AND (t.source_xxh3 IS DISTINCT FROM f.dataset_xxh3 OR t.sent_patient_id IS DISTINCT FROM "
                       "f.patient_id OR t.sent_header.SOPClassUID IS DISTINCT FROM f.sop_class_uid "
                       "OR t.sent_header.Rows IS DISTINCT FROM f.rows)")[0][0]
    assert bad == 0


def test_a_torn_last_line_is_never_merged_and_a_line_is_never_merged_twice(planned: Path) -> None:
    from pacscopy.send.books import SENT_COLS, TRANSFER_COLS

    con = idxmod.open_index(str(planned))
    sops = [r[0] for r in con.execute("SELECT sop_instance_uid FROM plan ORDER BY 1 LIMIT 3").fetchall()]
    paths = [r[0] for r in con.execute("SELECT path FROM plan ORDER BY sop_instance_uid LIMIT 3").fetchall()]
    con.close()

    def line(i: int) -> dict:
        cols = {c: [None] for c in (*TRANSFER_COLS, *SENT_COLS)}
        cols.update(sop_instance_uid=[sops[i]], path=[paths[i]], started=["2026-01-01T00:00:00"],
                    finished=["2026-01-01T00:00:01"], outcome=["stored"], status=[0], bytes=[10],
                    sent_header=['{"Rows": 8}'])
        return cols

    j = Journal.create(str(planned), "99-1")
    j.append("start", run_id=99, target="T@127.0.0.1:104", pid=1, host="h")
    j.append("transfers", run_id=99, target="T@127.0.0.1:104", cols=line(0))
    j.append("transfers", run_id=99, target="T@127.0.0.1:104", cols=line(1))
    whole = j.path.read_bytes()
    torn = json.dumps({"k": "transfers", "run_id": 99, "target": "T@127.0.0.1:104", "cols": line(2)}).encode()
    os.write(j.fd, torn[: len(torn) // 2])  # killed in the middle of this write
    j.close()
    saved = j.path.read_bytes()
    # a reader's open merges the dead journal first (opening the index read-write for a moment)
    con = idxmod.open_index(str(planned), read_only=True)
    got = con.execute("SELECT sop_instance_uid, sent_header.Rows FROM transfers WHERE run_id = 99 ORDER BY 1").fetchall()
    merged = con.execute("SELECT merged_bytes, merged_lines FROM journal_merges").fetchall()
    con.close()
    assert got == sorted([(sops[0], 8), (sops[1], 8)])
    assert merged == [(len(whole), 3)]
    assert _journals(planned) == []
    # a crash after the merge's commit, before the journal was removed: merged again, nothing doubles
    j.path.write_bytes(saved)
    idxmod.open_index(str(planned)).close()
    assert rows(planned, "SELECT count(*) FROM transfers WHERE run_id = 99") == [(2,)]
    assert _journals(planned) == []


# -- other commands while a send runs ----------------------------------------------------

def _figure(out: str, name: str) -> int:
    """status's figure ``name`` ('excluded', 'stored and current', ...)."""
    for line in out.splitlines():
        if line.strip().startswith(f"{name}:"):
            return int(line.split(":")[1].split()[0])
    raise AssertionError(out)


def _stored_current(out: str) -> int:
    for line in out.splitlines():
        if line.strip().startswith("stored and current:"):
            return int(line.split(":")[1].split()[0])
    raise AssertionError(out)


def test_status_every_second_during_a_send_and_query_report_reconcile(bigger: Path, tmp_path: Path) -> None:
    total = rows(bigger, "SELECT sum(size) FROM files")[0][0]
    rate = f"{max(1, total // 40 // 1000)}KB/s"  # a send of about 40 s
    with storescp(tmp_path) as peer:
        send = subprocess.Popen([PY, "-m", "pacscopy", "send", "--target", peer.target, "--index", str(bigger),
                                 "-q", "--max-rate", rate],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen: list[int] = []
        rates: list[int] = []
        running_seen = 0
        others: dict[str, subprocess.CompletedProcess] = {}
        try:
            while send.poll() is None:
                t0 = time.monotonic()
                r = pacscopy("status", "--target", peer.target, "--index", bigger)
                assert r.returncode == 0, r.stderr
                seen.append(_stored_current(r.stdout))
                if f"a send to {peer.target} is running (run " in r.stdout:
                    running_seen += 1
                    assert "these figures are as of " in r.stdout, r.stdout
                    # the send's own rate over the last minute, from its rate file (newer than the index)
                    m = re.search(r"its rate over the last (?:minute|\d+ s \(since its start\)): ([\d.]+) instances/s, "
                                  r"[\d.]+ MB/s \(as of \d\d:\d\d:\d\d; (\d+) stored by this run\)", r.stdout)
                    if m and float(m.group(1)) > 0:
                        rates.append(int(m.group(2)))
                        if _figure(r.stdout, "to send"):  # (its last merge done, nothing is left: no estimate)
                            assert "estimated finish at " in r.stdout, r.stdout
                        assert "no send run yet" not in r.stdout, r.stdout
                if running_seen and not others:  # from other processes, beside the status polls
                    # a second send to the same target: refused, naming the running one
                    second = pacscopy("send", "--target", peer.target, "--index", bigger, "-q")
                    for name, args in (("query", ["query", "SELECT count(*) AS n FROM transfers"]),
                                       ("report", ["report", "--format", "json"]),
                                       ("reconcile", ["reconcile", "--target", peer.target, "--no-query"])):
                        others[name] = subprocess.Popen([PY, "-m", "pacscopy", *args, "--index", str(bigger)],
                                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
            out, err = send.communicate(timeout=60)
            done = {name: (p.wait(timeout=120), *p.communicate()) for name, p in others.items()}
        finally:
            for p in [send, *others.values()]:
                if p.poll() is None:
                    p.kill()
        assert send.returncode == 0, out + err
    assert running_seen >= 3, (seen, out)
    assert len(rates) >= 2 and rates == sorted(rates), rates  # the rate is shown, its count never goes down
    assert second.returncode == 2, second
    assert second.stderr.startswith(f"pacscopy: error: a send to {peer.target} from index {bigger} is already "
                                    f"running (pid {send.pid} on ") and ", run 1)" in second.stderr, second.stderr
    assert seen == sorted(seen), seen  # the stored count never goes down
    assert seen[-1] > 0
    assert done["query"][0] == 0, done["query"]
    assert done["report"][0] == 0, done["report"]
    assert done["reconcile"][0] == 1 and "not complete" in done["reconcile"][1].lower(), done["reconcile"]
    for name in ("report", "reconcile"):  # they say how old their totals are
        assert f"a send to {peer.target} is running" in done[name][2] and " as of " in done[name][2], done[name]
    # after the send: everything merged, nothing said to be running
    r = pacscopy("status", "--target", peer.target, "--index", bigger)
    assert r.returncode == 0 and "is running" not in r.stdout
    planned, stored, twice = _stored_once(bigger, peer.target)
    assert _stored_current(r.stdout) == stored == planned and twice == 0


def test_two_sends_to_two_targets_at_once_both_complete(bigger: Path, tmp_path: Path) -> None:
    with storescp(tmp_path) as a, orthanc(tmp_path) as b:
        procs = [subprocess.Popen([PY, "-m", "pacscopy", "send", "--target", peer.target, "--index", str(bigger), "-q"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for peer in (a, b)]
        results = [p.communicate(timeout=600) for p in procs]
        for p, (out, err) in zip(procs, results):
            assert p.returncode == 0, out + err
        for peer in (a, b):
            planned, stored, twice = _stored_once(bigger, peer.target)
            assert stored == planned and twice == 0, peer.target
    runs = rows(bigger, "SELECT target, outcome, stored FROM send_runs ORDER BY target")
    assert sorted(r[0] for r in runs) == sorted([a.target, b.target])
    assert all(r[1] == "complete" for r in runs), runs


def test_an_index_held_to_the_end_of_a_send_loses_nothing(bigger: Path, tmp_path: Path) -> None:
    """A duckdb session holds the index through a send's end: the send keeps sending (journaling), its
    last merge's wait expires, it says so; the next command merges everything, each instance once."""
    total = rows(bigger, "SELECT sum(size) FROM files")[0][0]
    with storescp(tmp_path) as peer:
        send = subprocess.Popen([PY, "-m", "pacscopy", "send", "--target", peer.target, "--index", str(bigger),
                                 "-q", "--max-rate", f"{max(1, total // 8 // 1000)}KB/s"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PACSCOPY_LOCK_WAIT": "1"})
        deadline = time.monotonic() + 120
        while not any(j.name.endswith(f"-{send.pid}.jsonl") for j in _journals(bigger)):
            assert send.poll() is None and time.monotonic() < deadline, send.communicate()
            time.sleep(0.05)
        p = holder(bigger, "import duckdb, time\n"
                           "for _ in range(600):\n"
                           "    try:\n"
                           "        con = duckdb.connect(index.default_index_path()); break\n"
                           "    except duckdb.Error:\n"
                           "        time.sleep(0.01)\n")
        try:
            out, err = send.communicate(timeout=300)
            left = _journals(bigger)
        finally:
            release(p)
    assert send.returncode == 0, out + err
    assert "the index stayed busy: the last records wait in the run's journal" in out, out
    assert f"process {p.pid}" in err and "waiting up to 1 s" in err, err
    assert len(left) == 1
    r = pacscopy("status", "--target", peer.target, "--index", bigger)
    assert r.returncode == 0, r.stderr
    planned, stored, twice = _stored_once(bigger, peer.target)
    assert _stored_current(r.stdout) == stored == planned and twice == 0
    assert rows(bigger, "SELECT outcome FROM send_runs") == [("complete",)]
    assert _journals(bigger) == []


def test_a_journal_the_index_refuses_never_blocks_the_other_commands(planned: Path) -> None:
    from pacscopy.send.books import SENT_COLS, TRANSFER_COLS

    cols = {c: [None] for c in (*TRANSFER_COLS, *SENT_COLS)}  # no SOPInstanceUID: NOT NULL refuses it
    j = Journal.create(str(planned), "98-1")
    j.append("start", run_id=98, target="T@127.0.0.1:104", pid=1, host="h")
    j.append("transfers", run_id=98, target="T@127.0.0.1:104", cols=cols)
    j.close()
    r = pacscopy("status", "--target", "T@127.0.0.1:104", "--index", planned)
    assert r.returncode == 0, r.stderr
    assert _journals(planned) == [j.path.with_name(j.path.name + ".unmergeable")]


def test_the_send_takes_results_while_a_merge_runs(bigger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A merge (open, insert, checkpoint: seconds on a busy machine) runs beside the send's main loop,
    never in it: results keep being taken and recorded while a merge is under way. Each merge here is
    made to last 1.5 s; the send's workers are real processes sending to a real storescp."""
    import threading

    from pacscopy import journal as journalmod
    from pacscopy.dicom.peer import Target
    from pacscopy.send.options import SendOptions
    from pacscopy.send.send import send_index

    real_merge = journalmod.merge_some
    in_merge = threading.Event()
    merge_threads: set[str] = set()

    def slow_merge(con, path, chunks):  # type: ignore[no-untyped-def]
        merge_threads.add(threading.current_thread().name)
        in_merge.set()
        try:
            time.sleep(1.5)
            return real_merge(con, path, chunks)
        finally:
            in_merge.clear()

    monkeypatch.setattr(journalmod, "merge_some", slow_merge)
    during: list[int] = []
    progress = [0]

    def on_progress(msg: dict) -> None:
        progress[0] += 1
        if in_merge.is_set():
            during.append(progress[0])

    total = rows(bigger, "SELECT sum(size) FROM files")[0][0]
    with storescp(tmp_path) as peer:
        res = send_index(str(bigger), Target.parse(peer.target),
                         SendOptions(associations=2, max_rate=max(1000, total // 8)), on_progress=on_progress)
    assert res.outcome == "complete" and res.merged, res
    assert len(merge_threads - {"MainThread"}) == 1, merge_threads  # the merges during the send: one thread
    assert during, "no result was taken while a merge ran: the main loop waited for the merges"
    planned, stored, twice = _stored_once(bigger, peer.target)
    assert stored == planned and twice == 0
    assert rows(bigger, "SELECT merged_lines > 2, finished FROM journal_merges") == [(True, True)]
    assert _journals(bigger) == []


def test_a_merge_of_a_long_backlog_keeps_the_status_figures_with_one_count_not_one_per_line(
        planned: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 60 s waits seen with polling (BENCHMARKS.md, "Concurrent use"): once a `status` has kept the figures,
    every merge keeps them current, and a keyed count reads whole tables. Counted once per line, a merge of a
    backlog (the lines journaled while a reader held the index) held the index for lines x counts — on a loaded
    machine longer than a poll waits (60 s). The count runs once per merged chunk: the hold does not grow
    with the backlog."""
    from pacscopy.send import status_counts
    from pacscopy.send.books import SENT_COLS, TRANSFER_COLS

    target = "T@127.0.0.1:104"
    r = pacscopy("status", "--target", target, "--index", planned)
    assert r.returncode == 0, r.stderr
    assert rows(planned, "SELECT count(*) FROM status_kept")[0][0] == 1  # the figures are kept from now on
    plan = rows(planned, "SELECT sop_instance_uid, path FROM plan ORDER BY 1")
    j = Journal.create(str(planned), "77-1")  # a live journal (flocked): only an explicit merge takes it in
    j.append("start", run_id=77, target=target, pid=1, host="h")
    for i, (sop, path) in enumerate(plan):  # one line per flush: a backlog of 15 lines
        cols = {c: [None] for c in (*TRANSFER_COLS, *SENT_COLS)}
        cols.update(sop_instance_uid=[sop], path=[path], started=["2026-01-01T00:00:00"],
                    finished=[f"2026-01-01T00:00:{i + 1:02d}"], outcome=["stored"], status=[0], bytes=[10])
        j.append("transfers", run_id=77, target=target, cols=cols)
    keyed: list[str] = []
    real = status_counts._move  # since schema 0020: one keyed evaluation (a move) per kept batch

    def counting(con, tgts, sops):  # type: ignore[no-untyped-def]
        keyed.extend(tgts)
        return real(con, tgts, sops)

    monkeypatch.setattr(status_counts, "_move", counting)
    from pacscopy import journal as journalmod

    con = idxmod.open_index(str(planned), lean=True)
    try:
        merged, damaged = journalmod.merge(con, j.path)
    finally:
        con.close()
    j.close()
    assert (merged, damaged) == (len(plan) + 1, False)
    assert 1 <= len(keyed) <= 2, f"{len(keyed)} keyed evaluations for one merge of {len(plan)} lines"
    monkeypatch.undo()
    con = idxmod.open_index(str(planned), read_only=True)
    try:  # the kept figures moved with the merge: they equal a full count
        kept = status_counts.kept(con, target)
        assert kept is not None and kept[0] == status_counts.count(con, target)
        assert sum(c.instances for c in kept[0].values()) == len(plan)
    finally:
        con.close()


def test_a_live_merge_takes_one_chunk_and_lets_the_index_go(planned: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backlog (journaled while a long reader held the index) is merged chunk by chunk, one per open of the
    index, so that a status or query waiting for the index gets in between; the send's last merge takes in
    the rest. Every line is merged once."""
    from pacscopy import journal as journalmod
    from pacscopy.send.books import SENT_COLS, TRANSFER_COLS

    target = "T@127.0.0.1:104"
    plan = rows(planned, "SELECT sop_instance_uid, path FROM plan ORDER BY 1")
    j = Journal.create(str(planned), "78-1")
    j.append("start", run_id=78, target=target, pid=1, host="h")
    for i, (sop, path) in enumerate(plan):
        cols = {c: [None] for c in (*TRANSFER_COLS, *SENT_COLS)}
        cols.update(sop_instance_uid=[sop], path=[path], started=["2026-01-01T00:00:00"],
                    finished=[f"2026-01-01T00:00:{i + 1:02d}"], outcome=["stored"], status=[0], bytes=[10])
        j.append("transfers", run_id=78, target=target, cols=cols)
    size = j.path.stat().st_size
    monkeypatch.setattr(journalmod, "MERGE_CHUNK", size // 3 + 1)  # the backlog: three chunks and a bit
    merger = journalmod.Merger(str(planned), j, 1.0)
    merger.appended = len(plan) + 1
    merged: list[int] = []
    for _ in range(2):  # the merge thread's merges
        assert merger.try_merge(wait=0.0, whole=False)
        assert merger.behind and merger.dirty  # more left: taken in by the next merge
        merged.append(rows(planned, "SELECT coalesce(sum(merged_lines), 0) FROM journal_merges")[0][0])
    assert 0 < merged[0] < merged[1] < len(plan) + 1, merged
    assert merger.try_merge(wait=0.0)  # the last one: the rest
    assert not merger.behind and not merger.dirty
    j.close()
    assert rows(planned, "SELECT merged_lines, merged_bytes FROM journal_merges") == [(len(plan) + 1, size)]
    assert rows(planned, "SELECT count(*) FROM transfers WHERE run_id = 78") == [(len(plan),)]


def test_status_watch_shows_each_change_from_one_process_and_ends_on_ctrl_c(planned: Path) -> None:
    """`status --watch` (one process, cheaper than `watch pacscopy status`): it holds the index only while it
    reads, so a writer gets in between its refreshes, and the next refresh shows the writer's change."""
    import signal

    target = "T@127.0.0.1:104"
    p = subprocess.Popen([PY, "-m", "pacscopy", "status", "--target", target, "--index", str(planned),
                          "--watch", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    try:
        def excluded_line() -> str:
            for line in p.stdout:  # type: ignore[union-attr]
                if line.strip().startswith("excluded:"):
                    return line
            raise AssertionError("status --watch ended")

        assert int(excluded_line().split(":")[1].split()[0]) == 0
        (sop,) = rows(planned, "SELECT sop_instance_uid FROM plan ORDER BY 1 LIMIT 1")[0]
        r = pacscopy("decide", "--sop", sop, "--action", "skip", "--note", "not wanted", "--index", planned)
        assert r.returncode == 0, r.stderr  # the watch does not keep the writer out
        deadline = time.monotonic() + 120
        while int(excluded_line().split(":")[1].split()[0]) != 1:
            assert time.monotonic() < deadline, "the decision never showed"
    finally:
        p.send_signal(signal.SIGINT)
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
    assert p.returncode == 0 and "Traceback" not in err, (p.returncode, err)


def test_status_during_a_send_shows_the_figures_the_send_published_only_while_the_index_is_unchanged(
        bigger: Path, tmp_path: Path) -> None:
    """A status during a send reads the figures the send published after its latest merge, without opening
    the index (status_cache.live), and only while the index is byte for byte as the send left it: the
    figures equal the index's own, and a write by another process (a decision) is never hidden behind
    figures published before it. While nobody asks, the send publishes nothing."""
    from pacscopy import validate
    from pacscopy.journal import running
    from pacscopy.send import queue, status_cache

    total = rows(bigger, "SELECT sum(size) FROM files")[0][0]
    rate = f"{max(1, total // 30 // 1000)}KB/s"  # a send of about 30 s
    run_dir = Path(str(bigger) + ".run")
    with storescp(tmp_path) as peer:
        target = peer.target
        send = subprocess.Popen([PY, "-m", "pacscopy", "send", "--target", target, "--index", str(bigger),
                                 "-q", "--max-rate", rate], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not list(run_dir.glob("rate-*.json")):  # the send is under way, merging every second
                assert send.poll() is None and time.monotonic() < deadline, send.communicate()
                time.sleep(0.2)
            time.sleep(2.5)
            assert not list(run_dir.glob("live-*.json"))  # nobody looked: nothing published
            first = pacscopy("status", "--target", target, "--index", bigger)
            assert first.returncode == 0, first.stderr
            assert "(from the running send)" not in first.stdout, first.stdout  # read from the index
            live = compared = 0
            while send.poll() is None and (live < 3 or compared < 3):
                assert time.monotonic() < deadline + 60, (live, compared)
                r = pacscopy("status", "--target", target, "--index", bigger)
                assert r.returncode == 0, r.stderr
                if "these figures are as of " in r.stdout and "its latest merge (from the running send)" in r.stdout:
                    live += 1
                # the published figures are the index's own, whenever the index did not change in between
                stamp = status_cache.index_stamp(str(bigger))
                published = status_cache.live(str(bigger), target)
                if published is None:
                    continue
                try:
                    with idxmod.open_index(str(bigger), read_only=True, lean=True, wait=0) as con:
                        p = queue.progress(con, validate.target(target, resolve=False))
                        sends = running(con, str(bigger))
                except IndexBusyError:
                    continue
                if status_cache.index_stamp(str(bigger)) != stamp:
                    continue
                assert published[0] == p, (published[0], p)
                assert [(r.send.pid, r.as_of) for r in published[1]] == [(r.send.pid, r.as_of) for r in sends]
                assert all(r.live for r in published[1]) and not any(r.live for r in sends)
                compared += 1
            assert live >= 3 and compared >= 3, (live, compared)
            # a decision by another process: the very next status shows it (never the figures from before it);
            # on the instance the send sends last (its queue's order), not sent yet
            queued = idxmod.query(str(bigger), f"SELECT sop_instance_uid FROM ({queue.queue_sql(None)})",
                                  {"target": target, "transcode": False, "limit": 2**62})[1]
            assert len(queued) > 20, queued  # far from the end of the send
            sop = queued[-1][0]
            before = pacscopy("status", "--target", target, "--index", bigger)
            d = pacscopy("decide", "--sop", sop, "--action", "hold", "--note", "ask the radiologist", "--index", bigger)
            assert d.returncode == 0, d.stderr
            after = pacscopy("status", "--target", target, "--index", bigger)
            assert after.returncode == 0, after.stderr
            assert _figure(after.stdout, "excluded") == _figure(before.stdout, "excluded") + 1, (before.stdout, after.stdout)
            out, err = send.communicate(timeout=120)
        finally:
            if send.poll() is None:
                send.kill()
        assert send.returncode == 0, out + err
    assert not list(run_dir.glob("live-*.json"))  # removed with the send's journal
