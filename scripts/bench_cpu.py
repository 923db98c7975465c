"""CPU seconds beside wall time and peak RSS: scripts/bench_index.py's commands, from one or more checkouts.

    python scripts/bench_cpu.py --index PATH [--code DIR ...] [--runs N] report reconcile ...

Runs each named command of scripts/bench_index.py (check, status, report, reconcile) on PATH with
the pacscopy of each --code DIR in turn (default: this checkout; e.g. an old commit unpacked with
`git archive REV | tar -x -C DIR`), alternated run by run so that the load falls on both alike, and
prints a Markdown row per run: wall time, CPU seconds of the whole process tree (user + system, from
wait4), peak RSS of the tree (sampled every 20 ms) and the 1-minute load average at the start. On a
loaded machine the CPU seconds are the steadier figure; compare side by side in the same run.
Commands that write (check, a reconcile whose states are not kept) change PATH: use copies.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_index import COMMANDS, _tree_rss  # noqa: E402


def measure(code: Path, index: Path, name: str) -> tuple[float, float, int, int, str]:
    """Wall s, CPU s of the tree, peak RSS bytes, exit code and stderr tail of one command."""
    cmd = [sys.executable, "-m", "pacscopy", *COMMANDS[name], "--index", str(index)]
    env = dict(os.environ, PYTHONPATH=str(code))
    t = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=code)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t
    done.set()
    th.join()
    return wall, usage.ru_utime + usage.ru_stime, peak, os.waitstatus_to_exitcode(status), err.strip()[-200:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--code", type=Path, action="append", help="a checkout to run (repeatable)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("commands", nargs="+", choices=sorted(COMMANDS))
    a = ap.parse_args()
    codes = [c.resolve() for c in a.code or [Path(__file__).resolve().parent.parent]]
    index = a.index.resolve()
    print("| command | code | wall | CPU (user+sys, tree) | peak RSS (tree) | load at start | exit |")
    print("|---|---|--:|--:|--:|--:|---|")
    for name in a.commands:
        for _ in range(a.runs):
            for code in codes:
                load = os.getloadavg()[0]
                wall, cpu, peak, rc, err = measure(code, index, name)
                note = f"{rc}" + (f": {err.splitlines()[-1]}" if rc not in (0, 1) and err else "")
                print(f"| {name} | {code} | {wall:.1f} s | {cpu:.1f} s | {peak / 2**20:.0f} MB | {load:.1f} | {note} |",
                      flush=True)


if __name__ == "__main__":
    main()
