"""Benchmark a delta run: rescan + check + send of an archive where 1 % changed, against the first run.

A corpus of N small Part 10 files is generated in a temporary folder (it is modified, so it
is not the shared corpus of bench_scan), scanned, checked and sent to DCMTK's storescp
(--ignore: it answers success and keeps nothing); then 1 % of the files get a revised
StudyDescription (rewritten with pydicom, new mtime), and the delta run repeats scan, check
and send: the send queue holds just the changed instances, as updates. Every stage is one
`pacscopy` process, timed from outside; the load average is recorded before and after,
because the machine is shared.

usage: python scripts/bench_delta.py [--files 200000] [--size 2000] [--changed 0.01] [--associations 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACSCOPY = [str(ROOT / ".venv" / "bin" / "pacscopy")]


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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=2_000)
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--associations", type=int, default=4)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import pydicom

    from pacscopy.testing.synth import make_corpus

    tmp = Path(tempfile.mkdtemp(prefix="pacscopy-bench-delta-"))
    storescp = shutil.which("storescp")
    if not storescp:
        raise SystemExit("bench: storescp (DCMTK) is needed: run scripts/setup")
    proc = None
    try:
        log(f"generating {a.files} files of ~{a.size} B in {tmp}")
        files = make_corpus(tmp / "src", a.files, a.size)
        env = dict(os.environ, PACSCOPY_INDEX=str(tmp / "delta.duckdb"), TCP_NODELAY="1")
        port = free_port()
        proc = subprocess.Popen([storescp, "-aet", "BENCH", "--ignore", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        target = f"BENCH@127.0.0.1:{port}"
        rows: list[tuple[str, float, float]] = []
        load0 = os.getloadavg()
        first: dict[str, float] = {}
        for stage, args in (("scan", ["scan", str(tmp / "src"), "-q"]), ("check", ["check", "-q"]),
                            ("send", ["send", "--target", target, "-q", "--associations", str(a.associations)])):
            log(f"first run: {stage}")
            first[stage], out = timed(args, env)
            if stage == "send":
                log(out.strip().splitlines()[1] if out else "")
        step = max(1, int(1 / a.changed))
        changed = files[::step]
        log(f"changing {len(changed)} files ({a.changed:.0%})")
        for p in changed:
            ds = pydicom.dcmread(p)
            ds.StudyDescription = "REVISED"
            ds.save_as(p)
        delta: dict[str, float] = {}
        queued = ""
        for stage, args in (("scan", ["scan", str(tmp / "src"), "-q"]), ("check", ["check", "-q"]),
                            ("send", ["send", "--target", target, "-q", "--associations", str(a.associations)])):
            log(f"delta run: {stage}")
            delta[stage], out = timed(args, env)
            if stage == "send":
                queued = next((ln.strip() for ln in out.splitlines() if ln.strip().startswith("queued:")), "")
        load1 = os.getloadavg()
        for stage in ("scan", "check", "send"):
            rows.append((stage, first[stage], delta[stage]))
        print(f"### Delta run: {a.files:,} files of ~{a.size:,} B, {len(changed):,} changed ({a.changed:.0%})\n")
        print(f"`python scripts/bench_delta.py --files {a.files} --size {a.size} --changed {a.changed} "
              f"--associations {a.associations}`; target DCMTK storescp --ignore; delta send {queued!r}\n")
        print("| stage | first run (s) | delta run (s) | delta / first |")
        print("|---|---|---|---|")
        for stage, f, d in rows:
            print(f"| {stage} | {f:.1f} | {d:.1f} | {d / f:.1%} |")
        tf, td = sum(first.values()), sum(delta.values())
        print(f"| **total** | {tf:.1f} | {td:.1f} | {td / tf:.1%} |")
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
