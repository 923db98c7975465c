"""Benchmark a delta run: rescan + check + send of an archive where 1 % changed, against the first run.

A corpus of N small Part 10 files is generated in a temporary folder (it is modified, so it
is not the shared corpus of bench_scan). Three measurements, each repeated (medians), all in the
same invocation so that the machine's load weighs on them alike:

* **first run** (the reference, --first-runs times): scan + check + send of the whole archive
  into a fresh index;
* **empty delta** (--runs times, on the last first run's index): the same three commands again
  with nothing changed (the fixed cost of a delta run: every file is still stat'ed, check
  rebuilds the plan, the queue is computed);
* **1 % delta**: 1 % of the files (a different slice each run) get a revised StudyDescription
  (rewritten with pydicom, new mtime), then scan + check + send: the queue holds exactly the
  changed instances, as updates (asserted).

The target is DCMTK's storescp --ignore --fork (it answers success and keeps nothing), so the send
stage measures pacscopy, not a target's disk; `send --no-prove`, because storescp cannot be
retrieved from (the retrieve-back of the updates is the target's C-GET, not measured here). Every
stage is one `pacscopy` process, timed from outside; the load average is recorded before and after.

usage: python scripts/bench_delta.py [--files 200000] [--size 2000] [--changed 0.01] [--associations 4]
                                     [--runs 3] [--first-runs 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACSCOPY = [str(ROOT / ".venv" / "bin" / "pacscopy")]
STAGES = ("scan", "check", "send")


def log(msg: str) -> None:
    print(f"[bench delta] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(PACSCOPY + args, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        raise SystemExit(f"bench: pacscopy {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return dt, r.stdout


def fmt(times: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in times.items())


def make_files(root: Path, count: int, size: int) -> list[Path]:
    """``count`` Part 10 files of ~``size`` bytes: make_corpus's first file as a template, its
    SOPInstanceUID (meta and dataset) and SeriesInstanceUID patched with unique ones of the same
    length (pydicom per file is too slow on a loaded machine for 200,000 files)."""
    from pacscopy.testing.synth import make_corpus

    (tpl,) = make_corpus(root / "template", 1, size)
    data = tpl.read_bytes()
    shutil.rmtree(root / "template")
    import pydicom

    head = pydicom.dcmread(__import__("io").BytesIO(data), stop_before_pixels=True)
    sop, series = str(head.SOPInstanceUID).encode(), str(head.SeriesInstanceUID).encode()
    out = []
    for i in range(count):
        new_sop = (b"2.25.9" + str(i).zfill(len(sop) - 6).encode())[:len(sop)]
        new_series = (b"2.25.8" + str(i // 100).zfill(len(series) - 6).encode())[:len(series)]
        p = root / f"s{i // 1000:04d}" / f"IM{i:06d}.dcm"
        if i % 1000 == 0:
            p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.replace(sop, new_sop).replace(series, new_series))
        out.append(p)
    return out


def cycle(src: Path, target: str, assoc: int, env: dict[str, str],
          full_too: bool = False) -> tuple[dict[str, float], int, int]:
    """scan + check + send; the seconds per stage, the instances queued and the updates among them.

    ``full_too``: after the (incremental) check, time a ``check --full`` of the same index too, as
    ``check_full`` (what every check cost before check was incremental; not part of the total)."""
    out: dict[str, float] = {}
    queued = updates = -1
    stages = [("scan", ["scan", str(src), "-q"]), ("check", ["check"])]
    if full_too:
        stages.append(("check_full", ["check", "--full", "-q"]))
    stages.append(("send", ["send", "--target", target, "-q", "--associations", str(assoc), "--no-prove"]))
    for stage, args in stages:
        out[stage], text = timed(args, env)
        if stage == "check":
            log("  " + text.strip().splitlines()[0])  # how the check ran (incremental: what it re-evaluated)
        if stage == "send":
            m = re.search(r"queued:\s+(\d+) instances .*?, (\d+) of them updates", text)
            if not m:
                raise SystemExit(f"bench: unexpected send output: {text[-1000:]}")
            queued, updates = int(m.group(1)), int(m.group(2))
    return out, queued, updates


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=2_000)
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--associations", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3, help="delta runs (each an empty and a 1 %% one)")
    ap.add_argument("--corpus", type=Path, help="reuse (and modify) this corpus of an earlier run; kept")
    ap.add_argument("--first-runs", type=int, default=3, help="first runs (the reference), each on a fresh index")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import pydicom

    tmp = Path(tempfile.mkdtemp(prefix="pacscopy-bench-delta-"))
    storescp = shutil.which("storescp")
    if not storescp:
        raise SystemExit("bench: storescp (DCMTK) is needed: run scripts/setup")
    proc = None
    try:
        if a.corpus:
            src = a.corpus
            files = sorted(src.glob("s*/IM*.dcm"))
            if len(files) != a.files:
                raise SystemExit(f"bench: {src} holds {len(files)} files, not --files {a.files}")
        else:
            src = tmp / "src"
            log(f"generating {a.files} files of ~{a.size} B in {src}")
            files = make_files(src, a.files, a.size)
        index = tmp / "delta.duckdb"
        env = dict(os.environ, PACSCOPY_INDEX=str(index), TCP_NODELAY="1")
        port = free_port()
        proc = subprocess.Popen([storescp, "-aet", "BENCH", "--ignore", "--fork", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        target = f"BENCH@127.0.0.1:{port}"
        load0 = os.getloadavg()
        stamp = time.strftime("%H%M%S")  # every change is new, also in a reused corpus
        t_start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        commit = os.environ.get("BENCH_COMMIT") or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "?"
        first: list[dict[str, float]] = []
        empty: list[dict[str, float]] = []
        delta: list[dict[str, float]] = []
        full_checks: list[float] = []  # check --full after each 1 % delta's check (the check before issue 12's delta)
        step = max(1, round(1 / a.changed))
        n_changed = 0
        for r in range(a.first_runs):
            for p in tmp.glob("delta.duckdb*"):  # a fresh index: the first run again
                p.unlink() if p.is_file() else shutil.rmtree(p)
            log(f"first run {r + 1}/{a.first_runs}")
            times, queued, updates = cycle(src, target, a.associations, env)
            assert queued == a.files and updates == 0, (queued, updates)
            first.append(times)
            log(f"  first run {fmt(times)}; load {os.getloadavg()[0]:.1f}")
        for r in range(a.runs):  # on the index of the last first run
            log(f"delta run {r + 1}/{a.runs}: empty delta")
            times, queued, updates = cycle(src, target, a.associations, env)
            assert queued == 0, queued
            empty.append(times)
            log(f"  empty delta {fmt(times)}; load {os.getloadavg()[0]:.1f}")
            changed = files[r % step::step]
            n_changed = len(changed)
            log(f"delta run {r + 1}/{a.runs}: changing {n_changed} files, then the delta run")
            for p in changed:
                ds = pydicom.dcmread(p)
                ds.StudyDescription = f"REVISED {r} {stamp}"
                ds.save_as(p)
            times, queued, updates = cycle(src, target, a.associations, env, full_too=True)
            assert queued == updates == n_changed, (queued, updates, n_changed)
            full_checks.append(times.pop("check_full"))
            delta.append(times)
            log(f"  1 % delta {fmt(times)}; load {os.getloadavg()[0]:.1f}")
        load1 = os.getloadavg()

        def med(runs: list[dict[str, float]], stage: str) -> float:
            return statistics.median(t[stage] for t in runs) if stage != "total" else \
                statistics.median(sum(t.values()) for t in runs)

        def spread(runs: list[dict[str, float]], stage: str) -> str:
            v = [t[stage] if stage != "total" else sum(t.values()) for t in runs]
            return f"{min(v):.1f}–{max(v):.1f}"

        print(f"### Delta run: {a.files:,} files of ~{a.size:,} B, {n_changed:,} changed ({a.changed:.0%})\n")
        print(f"`scripts/bench delta --files {a.files} --size {a.size} --changed {a.changed} "
              f"--associations {a.associations} --runs {a.runs} --first-runs {a.first_runs}`, {t_start}, commit "
              f"{commit}; target DCMTK storescp --ignore --fork; medians of {a.first_runs} first runs and "
              f"{a.runs} delta runs (min–max); each delta send queued exactly the "
              f"{n_changed:,} changed instances, all as updates.\n")
        print("| stage | first run s | empty delta s | 1 % delta s | empty / first | 1 % delta / first |")
        print("|---|--:|--:|--:|--:|--:|")
        for stage in (*STAGES, "total"):
            f, e, d = med(first, stage), med(empty, stage), med(delta, stage)
            name = f"**{stage}**" if stage == "total" else stage
            print(f"| {name} | {f:.1f} ({spread(first, stage)}) | {e:.1f} ({spread(empty, stage)}) | "
                  f"{d:.1f} ({spread(delta, stage)}) | {e / f:.1%} | {d / f:.1%} |")
        if full_checks:
            fc = statistics.median(full_checks)
            print(f"| check --full after the 1 % delta | {med(first, 'check'):.1f} | | {fc:.1f} "
                  f"({min(full_checks):.1f}–{max(full_checks):.1f}) | | {fc / med(first, 'check'):.1%} |")
        print(f"\nload average (1/5/15 min) before {load0[0]:.1f}/{load0[1]:.1f}/{load0[2]:.1f}, "
              f"after {load1[0]:.1f}/{load1[1]:.1f}/{load1[2]:.1f}; {os.cpu_count()} cores")
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
