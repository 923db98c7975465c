"""Issue 13: concurrent use of one index on one machine, with real processes.

The index is held only briefly by each command (open_index waits for it, then
names who holds it); a send records through its journal and merges it; one
send per target. Other commands' tests under concurrency: test_concurrency_others.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
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
    script = textwrap.dedent(f"""
        import sys
        from pacscopy import index, runfolder
        runfolder.COMMAND = {command!r}
        {code}
        print("ready", flush=True)
        sys.stdin.readline()
    """)
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
