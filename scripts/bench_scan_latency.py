"""``scripts/bench scan-latency``: the scan on high-latency storage, against what the storage gives.

Through ``scripts/latencyfs.py`` (a FUSE passthrough adding DELAY to every open,
read request and folder listing; multithreaded, so concurrent requests wait
together, as on a NAS), for each delay and each corpus, in the same run and in
rotating order:

* ``scan``: ``pacscopy scan MOUNT/CORPUS --index <fresh> -q --rehash`` (the real CLI);
* ``scan@base``: the same with ``PYTHONPATH=--base`` (another checkout of pacscopy,
  e.g. ``git worktree add /tmp/base main``): before/after in the same run;
* ``serial``: a read + xxh3_128 loop in one thread (over the first ``--serial-files`` files);
* ``threads32``: 32 Python threads doing the same read + xxh3 (the storage's limit as
  this machine sees it);
* ``start-up``: the same scan command on an empty folder of the same storage: what
  a scan costs before it reads (interpreter, imports, index, workers; seconds on a
  loaded machine), subtracted from the scan's wall time for its *net* rate.

``--local`` adds the same tools on the local disk, page cache warm and cold
(``echo 3 > /proc/sys/vm/drop_caches`` before every run: needs root).

Figures: files/s over the wall time of each process (start-up included) and
net of start-up (the scan: wall minus the median ``start-up``; the loops: their
own timing), medians of ``--runs``; the 1-minute load average at the
start of each measure is reported next to it (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import bench_scan as bs

MNT = bs.DATA / "mnt"
EMPTY = "empty"  # an empty folder next to the corpora: the scan's start-up
LATENCYFS = bs.REPO / "scripts" / "latencyfs.py"
CORPORA = [("0.5 MB", 800, 500_000), ("10 KB", 4_000, 10_000)]
DELAYS_MS = [0.5, 2.0, 10.0]

READ = """
import json, sys, time, xxhash
from concurrent.futures import ThreadPoolExecutor
listing, threads, limit, old, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
paths = [new + p[len(old):] for p in open(listing, encoding="utf-8").read().splitlines()][:limit]
def one(p):
    with open(p, "rb") as f:
        data = f.read()
    xxhash.xxh3_128_hexdigest(data)
    return len(data)
t = time.perf_counter()
if threads == 1:
    n = sum(map(one, paths))
else:
    with ThreadPoolExecutor(threads) as ex:
        n = sum(ex.map(one, paths))
print(json.dumps({"files": len(paths), "bytes": n, "loop_s": time.perf_counter() - t}))
"""


@dataclass
class Row:
    where: str  # "2 ms", "local warm", ...
    corpus: str
    tool: str
    run: int
    files: int
    nbytes: int
    wall_s: float
    work_s: float
    load: float
    rss_mb: float

    net_s: float = 0.0  # wall time net of start-up (scan: minus the median start-up; loops: their loop)

    @property
    def files_s(self) -> float:
        return self.files / self.wall_s

    @property
    def work_files_s(self) -> float:
        return self.files / self.work_s

    @property
    def net_files_s(self) -> float:
        return self.files / self.net_s if self.net_s > 0 else float("nan")


def mount(delay_ms: float) -> subprocess.Popen[bytes]:
    MNT.mkdir(parents=True, exist_ok=True)
    log = open(bs.DATA / "latencyfs.log", "ab")
    p = subprocess.Popen([bs.PY, str(LATENCYFS), str(bs.DATA / "corpora"), str(MNT), "--delay-ms", str(delay_ms)],
                         stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not os.path.ismount(MNT):
        if p.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench: latencyfs did not mount (see {bs.DATA / 'latencyfs.log'})")
        time.sleep(0.05)
    return p


def unmount(p: subprocess.Popen[bytes]) -> None:
    subprocess.run(["fusermount3", "-u", str(MNT)], check=False)
    p.wait(20)


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def measure(tool: str, c: bs.Corpus, root: Path, where: str, run: int, tmp: Path, args: argparse.Namespace,
            cold: bool) -> Row:
    out = tmp / f"{tool}.out"
    env = dict(bs.ENV)
    if tool.startswith("scan") or tool == "start-up":
        index = tmp / "index.duckdb"
        for p in tmp.glob("index.duckdb*"):  # the index, its WAL, its run folder (<index>.run/)
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        target = root.parent / EMPTY if tool == "start-up" else root
        cmd = [bs.PACSCOPY, "scan", str(target), "--index", str(index), "-q", "--rehash"]
        if tool == "scan@base":
            env["PYTHONPATH"] = str(args.base)
    else:
        threads = 1 if tool == "serial" else 32
        limit = args.serial_files if tool == "serial" else len(c.files)
        listing = c.root.parent / f"{c.root.name}.files"
        cmd = [bs.PY, "-c", READ, str(listing), str(threads), str(limit), str(c.root), str(root)]
    if cold:
        drop_caches()
    load = os.getloadavg()[0]
    saved, bs.ENV = bs.ENV, env
    try:
        wall, s = bs.run_measured(cmd, out)
    finally:
        bs.ENV = saved
    if tool == "start-up":
        files, nbytes, work = 0, 0, wall
    elif tool.startswith("scan"):
        files, nbytes = len(c.files), c.nbytes
        work = bs.check_index(index, c, root)
    else:
        res = json.loads(out.read_text().strip().splitlines()[-1])
        files, nbytes, work = res["files"], res["bytes"], res["loop_s"]
    r = Row(where, c.name, tool, run, files, nbytes, wall, work, load, s.peak_rss_kb / 1024)
    bs.log(f"{where:>10} {c.name:>7} run {run} {tool:>9}: {wall:6.2f} s  {r.files_s:7.0f} files/s "
           f"(loop {r.work_files_s:7.0f})  load {load:.1f}")
    return r


def run_all(args: argparse.Namespace) -> list[Row]:
    tools = ["scan", *(["scan@base"] if args.base else []), "serial", "threads32", "start-up"]
    (bs.DATA / "corpora" / EMPTY).mkdir(parents=True, exist_ok=True)
    scale = 10 if args.quick else 1
    corpora = [bs.ensure_corpus(name, n // scale, size, 1) for name, n, size in CORPORA
               if not args.only or any(o in name for o in args.only)]
    rows: list[Row] = []
    tmp = bs.DATA / "tmp-latency"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    places: list[tuple[str, float | None, bool]] = [(f"{d:g} ms", d, False) for d in args.delays]
    if args.local:
        places += [("local warm", None, False), ("local cold", None, True)]
    for where, delay, cold in places:
        fs = mount(delay) if delay is not None else None
        try:
            for c in corpora:
                root = MNT / c.root.name if fs is not None else c.root
                if fs is None and not cold:
                    bs.warm(c)
                for run in range(args.runs):
                    k = run % len(tools)
                    for tool in tools[k:] + tools[:k]:
                        rows.append(measure(tool, c, root, where, run + 1, tmp, args, cold))
        finally:
            if fs is not None:
                unmount(fs)
    for r in rows:  # net of start-up: the scans against the median start-up of their place
        if r.tool.startswith("scan"):
            ups = [u.wall_s for u in rows if (u.where, u.corpus, u.tool) == (r.where, r.corpus, "start-up")]
            r.net_s = r.wall_s - statistics.median(ups)
        else:
            r.net_s = r.work_s
    return rows


def report(rows: list[Row], args: argparse.Namespace) -> str:
    def med(where: str, corpus: str, tool: str, key: str) -> float | None:
        v = [getattr(r, key) for r in rows if (r.where, r.corpus, r.tool) == (where, corpus, tool)]
        return statistics.median(v) if v else None

    order = ["scan", "scan@base", "serial", "threads32"]
    tools = sorted({r.tool for r in rows} - {"start-up"}, key=order.index)
    base = "scan@base" in tools
    lines = [
        f"`scripts/bench scan-latency {' '.join(sys.argv[2:])}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"medians of {args.runs} runs. Each cell: files/s over the wall time (start-up included) / net of "
        "start-up (the scans: wall minus the median start-up, the scan of an empty folder on the same "
        "storage; the loops: their own timing). Ratios: median over runs of the per-run ratio (measured "
        "back to back); load: median 1-min load average at the start of the measures.",
        "",
        *bs.environment(),
        "",
        "| storage | corpus | " + " | ".join(f"{t} files/s" for t in tools) + " | scan start-up s"
        + " | scan ÷ 32 threads (net) | scan ÷ 32 threads (wall)" + (" | scan ÷ base (net) | scan ÷ base (wall)" if base else "")
        + " | load |",
        "|---|---|" + "---:|" * (len(tools) + 4 + 2 * base),
    ]
    for where in dict.fromkeys(r.where for r in rows):
        for corpus in dict.fromkeys(r.corpus for r in rows):
            if med(where, corpus, "scan", "wall_s") is None:
                continue
            here = [r for r in rows if (r.where, r.corpus) == (where, corpus)]
            cells = []
            for t in tools:
                w, k = med(where, corpus, t, "files_s"), med(where, corpus, t, "net_files_s")
                cells.append(f"{w:,.0f} / {k:,.0f}" if w else "")
            cells.append(f"{med(where, corpus, 'start-up', 'wall_s'):.2f}")
            cells += [_ratio(here, "scan", "threads32", "net_files_s"), _ratio(here, "scan", "threads32", "files_s")]
            if base:
                cells += [_ratio(here, "scan", "scan@base", "net_files_s"), _ratio(here, "scan", "scan@base", "files_s")]
            load = statistics.median(r.load for r in here)
            lines.append(f"| {where} | {corpus} | " + " | ".join(cells) + f" | {load:.1f} |")
    rss = max((r.rss_mb for r in rows if r.tool == "scan"), default=0)
    lines += ["", f"Peak RSS of the scan's process tree over all runs: {rss:.0f} MB."]
    return "\n".join(lines) + "\n"


def _ratio(rows: list[Row], a: str, b: str, key: str) -> str:
    """Median over runs of the per-run ratio a/b (each run's pair measured back to back)."""
    by_run: dict[int, dict[str, float]] = {}
    for r in rows:
        by_run.setdefault(r.run, {})[r.tool] = getattr(r, key)
    vals = [v[a] / v[b] for v in by_run.values() if a in v and b in v]
    return f"{statistics.median(vals):.0%}" if vals else ""


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="scripts/bench scan-latency", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per storage, corpus and tool (default 3)")
    ap.add_argument("--delays", type=float, nargs="+", default=DELAYS_MS, help="delays in ms (default 0.5 2 10)")
    ap.add_argument("--only", action="append", help="only corpora whose name contains this (repeatable)")
    ap.add_argument("--quick", action="store_true", help="a tenth of the files")
    ap.add_argument("--local", action="store_true", help="also local disk, warm and cold (drops caches: root)")
    ap.add_argument("--base", type=Path, help="another pacscopy checkout to compare with (PYTHONPATH)")
    ap.add_argument("--serial-files", type=int, default=200, help="files read by the serial loop (default 200)")
    args = ap.parse_args(argv)
    if args.base and not (args.base / "pacscopy" / "__init__.py").exists():
        raise SystemExit(f"bench: {args.base} is not a pacscopy checkout")
    rows = run_all(args)
    text = report(rows, args)
    out = bs.DATA / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"scan-latency-{stamp}.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    (out / f"scan-latency-{stamp}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == "scan-latency" else sys.argv[1:])
