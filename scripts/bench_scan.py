"""The scan benchmark behind ``scripts/bench scan`` and ``scripts/bench scan-rss``.

``scan``: on generated corpora (page cache warm), side by side in one run and
for each of several runs:

* ``pacscopy scan ROOT --index <fresh index> -q --rehash`` (the real CLI, as a subprocess);
* a naive single-process loop ``for p in files: pydicom.dcmread(p)`` (full read, no hashing);
* a raw read + ``xxhash.xxh3_128`` of every file, single process (the I/O limit).

Each of the three is a fresh subprocess; its wall time is measured from
``Popen`` to ``waitpid`` (interpreter start-up, imports, and for the scan the
walk, the worker pool and the DuckDB writes included). Each also reports its
"work" time without start-up: the baselines time their loop, the scan's
``scan_root`` time is read back from the index's ``scans`` table (which also
proves that every file was indexed as ok). The peak memory and the CPU time
of the process tree (main process + workers) are sampled from
``/proc``. The order of the three rotates from run to run; a fourth, tiny
corpus (64 files) shows the fixed start-up cost of each. Reported: medians.

``scan-rss``: scans 200,000 tiny files and reports the peak of the summed RSS
(and PSS) of the scan's whole process tree.

A markdown report goes to stdout, progress to stderr; the raw measurements are
kept as JSON under ``bench-data/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "bench-data"
PY = sys.executable
PACSCOPY = str(Path(PY).parent / "pacscopy")

# name, files, bytes per file, frames; --quick divides the file counts by 10.
CORPORA = [
    ("0.5 MB", 4_000, 500_000, 1),
    ("10 KB", 50_000, 10_000, 1),
    ("30 MB multi-frame", 50, 30_000_000, 60),
]
#: Not a goal: what each tool costs before real work (start-up, imports, pool, index).
#: 64 files: the fewest for which the scan starts its worker pool.
STARTUP = ("start-up: 64 × 2 KB", 64, 2_000, 1)
RSS_FILES, RSS_SIZE = 200_000, 2_000
#: The tools' environment. A user's pacscopy runs from compiled bytecode: a
#: PYTHONDONTWRITEBYTECODE left in the environment would make every run (and
#: every scan worker) compile pacscopy's modules again, ~0.02 s each.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
TOOLS: tuple[str, ...] = ("scan", "naive", "raw")
TOOL_LABEL = {
    "scan": "`pacscopy scan`",
    "naive": "naive `dcmread` loop",
    "raw": "raw read + xxh3",
    "base": "`pacscopy scan` of --base",
}
#: ``--base DIR``: another checkout of pacscopy, scanned as tool "base" (PYTHONPATH=DIR) in the same runs.
BASE: Path | None = None

# The two baselines, run as ``python -c CODE LISTFILE``; each prints
# {"files", "bytes", "loop_s"} as JSON (loop_s: the loop alone, no start-up).
NAIVE = """
import json, sys, time
import pydicom
paths = open(sys.argv[1], encoding="utf-8").read().splitlines()
t = time.perf_counter()
for p in paths:
    pydicom.dcmread(p)
print(json.dumps({"files": len(paths), "loop_s": time.perf_counter() - t}))
"""
RAW = """
import json, sys, time
import xxhash
paths = open(sys.argv[1], encoding="utf-8").read().splitlines()
t = time.perf_counter()
n = 0
for p in paths:
    with open(p, "rb") as f:
        data = f.read()
    xxhash.xxh3_128_hexdigest(data)
    n += len(data)
print(json.dumps({"files": len(paths), "bytes": n, "loop_s": time.perf_counter() - t}))
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- corpora -----------------------------------------------------------------


@dataclass
class Corpus:
    name: str
    root: Path
    files: list[str]
    nbytes: int


def corpus_dir(count: int, size: int, frames: int) -> Path:
    return DATA / "corpora" / f"{count}x{size}B-f{frames}"


def ensure_corpus(name: str, count: int, size: int, frames: int) -> Corpus:
    """Generate the corpus once (``pacscopy.testing.synth.make_corpus``); reuse it afterwards."""
    root = corpus_dir(count, size, frames)
    done = root.parent / f"{root.name}.complete"  # outside the root: not scanned
    listing = root.parent / f"{root.name}.files"
    if not done.exists():
        from pacscopy.testing.synth import make_corpus

        if root.exists():
            shutil.rmtree(root)  # an interrupted generation
        log(f"generating {name}: {count} files of ~{size:,} B (frames={frames}) under {root} ...")
        t = time.monotonic()
        make_corpus(root, count, size, frames=frames)
        done.write_text(f"make_corpus(root, {count}, {size}, frames={frames})\n")
        log(f"  done in {time.monotonic() - t:.0f} s")
    if not listing.exists() or listing.stat().st_mtime < done.stat().st_mtime:
        files = sorted(str(p) for p in root.rglob("*.dcm"))
        listing.write_text("\n".join(files) + "\n", encoding="utf-8")
    files = listing.read_text(encoding="utf-8").splitlines()
    nbytes = sum(os.stat(p).st_size for p in files)
    if len(files) != count:
        raise SystemExit(f"bench: {root} holds {len(files)} files, expected {count}; delete it and rerun")
    return Corpus(name, root, files, nbytes)


def warm(c: Corpus) -> None:
    """Read every file once so that all runs start with the page cache warm."""
    t = time.monotonic()
    for p in c.files:
        with open(p, "rb", buffering=0) as f:
            while f.read(1 << 20):
                pass
    log(f"warmed {c.name}: {len(c.files)} files, {c.nbytes / 1e6:,.0f} MB in {time.monotonic() - t:.1f} s")


# -- measuring a process tree --------------------------------------------------


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (the scan's worker processes)."""
    out, i = [pid], 0
    while i < len(out):
        p = out[i]
        i += 1
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    out.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process so far (zombies keep theirs)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _rss_kb(pid: int) -> int:
    """RSS from /proc/PID/statm: cheap, unlike smaps_rollup (which walks the page tables)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


def _rss_pss_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except OSError:
        pass
    return rss, pss


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree every ``interval`` s, PSS every ``PSS_EVERY``-th time.

    The sampler shares the 2 cores with what it measures: reading smaps_rollup of
    every process every 20 ms took ~20 ms of a 0.45 s scan (0.466 s against 0.444 s,
    7 runs each). RSS now comes from statm; PSS, the costly one, every 100 ms.

    Also keeps the last CPU time seen of every process of the tree (a process
    that lives less than one interval may be missed: the CPU total is a
    lower bound, close enough for start-up and worker processes).
    """

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_rss_kb = self.peak_pss_kb = self.max_proc_rss_kb = self.max_procs = 0
        self.cpu: dict[int, float] = {}
        self.done = threading.Event()

    PSS_EVERY = 5

    def run(self) -> None:
        n = 0
        while not self.done.is_set():
            pids = _tree(self.pid)
            tot_rss = tot_pss = 0
            with_pss = n % self.PSS_EVERY == 0
            n += 1
            for p in pids:
                cpu = _cpu_s(p)
                if cpu is not None:
                    self.cpu[p] = cpu
                rss = _rss_kb(p)
                tot_rss += rss
                self.max_proc_rss_kb = max(self.max_proc_rss_kb, rss)
                if with_pss:
                    tot_pss += _rss_pss_kb(p)[1]
            self.peak_rss_kb = max(self.peak_rss_kb, tot_rss)
            self.peak_pss_kb = max(self.peak_pss_kb, tot_pss)
            self.max_procs = max(self.max_procs, len(pids))
            self.done.wait(self.interval)

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())


@dataclass
class Measure:
    tool: str
    corpus: str
    run: int
    wall_s: float
    files: int
    nbytes: int
    loop_s: float | None = None  # baselines: the loop alone; scan: scan_root's own time
    tree_rss_mb: float = 0.0  # peak of the summed RSS of the process tree
    tree_pss_mb: float = 0.0  # the same in PSS (shared pages counted once)
    max_proc_rss_mb: float = 0.0  # peak RSS of the largest single process
    procs: int = 0
    cpu_s: float = 0.0  # user + system CPU of the whole process tree
    cpu_main_s: float = 0.0  # ... of the main process alone
    load: float = 0.0  # 1-minute load average when the measure started

    @property
    def files_s(self) -> float:
        return self.files / self.wall_s

    @property
    def mb_s(self) -> float:
        return self.nbytes / 1e6 / self.wall_s

    @property
    def inner_files_s(self) -> float | None:
        return self.files / self.loop_s if self.loop_s else None

    @property
    def inner_mb_s(self) -> float | None:
        return self.nbytes / 1e6 / self.loop_s if self.loop_s else None


def run_measured(cmd: list[str], out_path: Path, env: dict[str, str] | None = None) -> tuple[float, TreeSampler]:
    """Run ``cmd``; return (wall seconds, memory sampler). stdout+stderr go to ``out_path``.

    (Not ``ru_maxrss``: Linux carries the pre-exec high-water mark into the
    child, so it reports at least the benchmark process's own RSS.)
    """
    with open(out_path, "wb") as out:
        t = time.perf_counter()
        # cwd: a scratch folder, not the checkout: with the checkout as cwd, the scan's
        # workers could import ./pacscopy even when PYTHONPATH points elsewhere.
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=out_path.parent, env=env or ENV)
        sampler = TreeSampler(p.pid)
        sampler.start()
        _, status = os.waitpid(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
    sampler.done.set()
    sampler.join()
    cpu = _cpu_s(p.pid)  # reaped: gone; the sampler's last reading stands
    if cpu is not None:
        sampler.cpu[p.pid] = cpu
    if p.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed (exit {p.returncode}):\n{out_path.read_text()[-3000:]}")
    return wall, sampler


def measure(tool: str, c: Corpus, run: int, tmp: Path) -> Measure:
    out = tmp / f"{tool}.out"
    env = None
    if tool in ("scan", "base"):
        index = tmp / "index.duckdb"  # fresh for every run
        cmd = [PACSCOPY, "scan", str(c.root), "--index", str(index), "-q", "--rehash"]
        if tool == "base":
            assert BASE is not None
            env = {**ENV, "PYTHONPATH": str(BASE)}
    else:
        listing = c.root.parent / f"{c.root.name}.files"
        cmd = [PY, "-c", NAIVE if tool == "naive" else RAW, str(listing)]
    load = os.getloadavg()[0]
    wall, s = run_measured(cmd, out, env)
    m = Measure(tool, c.name, run, wall, len(c.files), c.nbytes, tree_rss_mb=s.peak_rss_kb / 1024,
                tree_pss_mb=s.peak_pss_kb / 1024, max_proc_rss_mb=s.max_proc_rss_kb / 1024, procs=s.max_procs,
                cpu_s=s.cpu_total, cpu_main_s=s.cpu.get(s.pid, 0.0), load=load)
    if tool in ("scan", "base"):
        m.loop_s = check_index(index, c)
        for p in tmp.glob("index.duckdb*"):  # the index, its WAL, its run folder (<index>.run/)
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
    else:
        res = json.loads(out.read_text().strip().splitlines()[-1])
        if res["files"] != len(c.files) or res.get("bytes", c.nbytes) != c.nbytes:
            raise SystemExit(f"bench: {tool} read {res} but the corpus has {len(c.files)} files, {c.nbytes} B")
        m.loop_s = res["loop_s"]
    return m


def check_index(index: Path, c: Corpus, root: Path | None = None) -> float:
    """The scan (of ``root``, if named) must have indexed every file as ok; return scan_root's own seconds."""
    import duckdb

    con = duckdb.connect(str(index), read_only=True)
    try:
        n, ok, nbytes = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'ok'), sum(size) FROM files").fetchone()
        secs = con.execute(
            "SELECT (epoch_us(max(finished)) - epoch_us(min(started))) / 1e6 FROM scans").fetchone()[0]
    finally:
        con.close()
    if n != len(c.files) or ok != n or nbytes != c.nbytes:
        of = f" of {root}" if root is not None else ""
        raise SystemExit(f"bench: the scan{of} indexed {n} files ({ok} ok, {nbytes} B); expected "
                         f"{len(c.files)} ok files, {c.nbytes} B")
    return float(secs)


# -- reporting -----------------------------------------------------------------


def med(ms: list[Measure], key: str) -> float:
    vals = [getattr(m, key) for m in ms]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else float("nan")


def environment() -> list[str]:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout

    import pacscopy
    import pydicom
    import xxhash

    src = Path(pacscopy.__file__).resolve().parent.parent
    if src == REPO:
        dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no", "--",
                                          "pacscopy", "sql").splitlines()]
        code = f"commit {git('rev-parse', '--short', 'HEAD').strip()}" + (
            f" + uncommitted changes to {', '.join(dirty)}" if dirty else "")
    else:
        code = f"pacscopy imported from {src} (not this checkout)"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    env = [f"{k}={v}" for k, v in sorted(os.environ.items())
           if k.startswith(("PACSCOPY_", "MALLOC_")) or k == "PYTHONPATH"]
    return [
        f"- {time.strftime('%Y-%m-%d %H:%M %Z')}; {code}" + (f"; environment: {' '.join(env)}" if env else ""),
        f"- machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()};"
        f" load average at the start: {load}",
        f"- Python {platform.python_version()}, pydicom {pydicom.__version__}, xxhash {xxhash.VERSION}",
    ]


def _mb(v: float) -> str:
    return f"{v:,.0f} MB" if v >= 1 else "–"  # – : the process ended before the first sample


def _x(a: float, b: float) -> str:
    return f"{a / b:.2f}×"


def report_scan(corpora: list[Corpus], startup: Corpus, results: list[Measure], runs: int,
                argv: list[str]) -> str:
    def sel(c: Corpus, t: str) -> list[Measure]:
        return [m for m in results if m.corpus == c.name and m.tool == t]

    L = ["## Scan: medians", ""] + environment() + [
        f"- command: `scripts/bench {' '.join(argv)}` ({runs} run(s) per corpus and tool; page cache warm)",
        *([f"- base: {TOOL_LABEL['base']} = the same command with PYTHONPATH={BASE}"] if BASE else []),
        "",
        *steady_state(corpora, startup, results),
        "End to end (wall time of the whole process, start-up included):",
        "",
        "| corpus | files | MB | scan files/s | scan MB/s | naive dcmread files/s | naive MB/s "
        "| raw read+xxh3 files/s | raw MB/s | scan ÷ naive (files/s) | scan ÷ raw (MB/s) | scan peak RSS (tree) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    goals, inner = [], []
    for c in corpora:
        by = {t: sel(c, t) for t in TOOLS}
        fs = {t: med(by[t], "files_s") for t in TOOLS}
        mbs = {t: med(by[t], "mb_s") for t in TOOLS}
        ifs = {t: med(by[t], "inner_files_s") for t in TOOLS}
        imbs = {t: med(by[t], "inner_mb_s") for t in TOOLS}
        L.append(
            f"| {c.name} | {len(c.files):,} | {c.nbytes / 1e6:,.0f} | {fs['scan']:,.0f} | {mbs['scan']:,.0f} "
            f"| {fs['naive']:,.0f} | {mbs['naive']:,.0f} | {fs['raw']:,.0f} | {mbs['raw']:,.0f} "
            f"| {_x(fs['scan'], fs['naive'])} | {mbs['scan'] / mbs['raw']:.0%} "
            f"| {med(by['scan'], 'tree_rss_mb'):,.0f} MB |"
        )
        inner.append(
            f"| {c.name} | {ifs['scan']:,.0f} | {imbs['scan']:,.0f} | {ifs['naive']:,.0f} | {imbs['raw']:,.0f} "
            f"| {_x(ifs['scan'], ifs['naive'])} | {imbs['scan'] / imbs['raw']:.0%} |"
        )
        if c.name.startswith("30 MB"):
            r = mbs["scan"] / mbs["raw"]
            goals.append(f"- {c.name}: scan MB/s = {r:.0%} of raw read+xxh3 MB/s "
                         f"(goal ≥ 60%: **{'met' if r >= 0.6 else 'not met'}**; "
                         f"work only: {imbs['scan'] / imbs['raw']:.0%})")
        else:
            r = fs["scan"] / fs["naive"]
            goals.append(f"- {c.name}: scan files/s = {r:.2f}× the naive dcmread loop's (goal ≥ 2×: "
                         f"**{'met' if r >= 2 else 'not met'}**; stretch ≥ 3×: "
                         f"{'met' if r >= 3 else 'not met'}; work only: {_x(ifs['scan'], ifs['naive'])})")
    L += [
        "",
        "Work only (start-up excluded): for the baselines the loop over the files, for the scan "
        "`scan_root` as timed by the index's `scans` table (walk, worker pool start, reading, "
        "DuckDB writes; not the CLI's imports, index creation and final checkpoint):",
        "",
        "| corpus | scan files/s | scan MB/s | naive dcmread files/s | raw read+xxh3 MB/s "
        "| scan ÷ naive (files/s) | scan ÷ raw (MB/s) |",
        "|---|--:|--:|--:|--:|--:|--:|",
        *inner,
        "",
        "Goals:",
        "",
        *goals,
        "",
        "Every measurement (medians; min–max of the wall time over the runs; *work s*: as in the table "
        "above; *CPU s*: user + system of the whole process tree, and of the scan's main process alone; "
        "peak RSS and PSS: summed over the process tree, RSS sampled every 20 ms, PSS every 100 ms):",
        "",
        "| corpus | tool | wall s | min–max s | work s | CPU s (main) | files/s | MB/s | peak RSS | peak PSS "
        "| largest process | processes |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in [*corpora, startup]:
        for t in TOOLS:
            ms = sel(c, t)
            walls = [m.wall_s for m in ms]
            main = f" ({med(ms, 'cpu_main_s'):.2f})" if t == "scan" else ""
            L.append(
                f"| {c.name} | {TOOL_LABEL[t]} | {med(ms, 'wall_s'):.2f} | {min(walls):.2f}–{max(walls):.2f} "
                f"| {med(ms, 'loop_s'):.2f} | {med(ms, 'cpu_s'):.2f}{main} | {med(ms, 'files_s'):,.0f} "
                f"| {med(ms, 'mb_s'):,.0f} | {_mb(med(ms, 'tree_rss_mb'))} | {_mb(med(ms, 'tree_pss_mb'))} "
                f"| {_mb(med(ms, 'max_proc_rss_mb'))} | {max(m.procs for m in ms)} |"
            )
    return "\n".join(L) + "\n"


def _per_run(ms: list[Measure], a: str, b: str, corpus: str) -> float:
    """Median over runs of (b's wall ÷ a's wall), each pair measured back to back in the same run."""
    by = {(m.tool, m.run): m.wall_s for m in ms if m.corpus == corpus}
    vals = [by[(b, r)] / by[(a, r)] for (t, r) in by if t == a and (b, r) in by]
    return statistics.median(vals) if vals else float("nan")


def steady_state(corpora: list[Corpus], startup: Corpus, results: list[Measure]) -> list[str]:
    """The issue 11 table: ratios per run (same load), the start-up's share of the run, the load."""
    def walls(c: Corpus, t: str) -> float:
        return med([m for m in results if m.corpus == c.name and m.tool == t], "wall_s")

    base = "base" in TOOLS
    L = [
        "Steady state (issue 11): each ratio is the median over the runs of the ratio of two measures "
        "taken back to back in the same run; *start-up share*: the tool's median wall time on the "
        f"start-up corpus ({startup.name}) ÷ its median wall time on this corpus; *load*: the 1-minute "
        "load average at the start of each measure (median, min–max).",
        "",
        "| corpus | files | MB | scan s | naive s | raw s |" + (" base s |" if base else "")
        + " start-up share scan / naive | scan ÷ naive (files/s) | scan ÷ raw (MB/s) |"
        + (" scan ÷ base |" if base else "") + " load |",
        "|---|--:|--:|--:|--:|--:|" + ("--:|" if base else "") + "--:|--:|--:|" + ("--:|" if base else "") + "--:|",
    ]
    for c in corpora:
        loads = [m.load for m in results if m.corpus == c.name]
        row = (f"| {c.name} | {len(c.files):,} | {c.nbytes / 1e6:,.0f} | {walls(c, 'scan'):.2f} "
               f"| {walls(c, 'naive'):.2f} | {walls(c, 'raw'):.2f} |")
        if base:
            row += f" {walls(c, 'base'):.2f} |"
        row += (f" {walls(startup, 'scan') / walls(c, 'scan'):.0%} / {walls(startup, 'naive') / walls(c, 'naive'):.0%} "
                f"| **{_per_run(results, 'scan', 'naive', c.name):.2f}×** "
                f"| {_per_run(results, 'scan', 'raw', c.name):.0%} |")
        if base:
            row += f" {_per_run(results, 'scan', 'base', c.name):.2f}× |"
        row += f" {statistics.median(loads):.1f} ({min(loads):.1f}–{max(loads):.1f}) |"
        L.append(row)
    return L + [""]


def save(kind: str, results: list[Measure], text: str) -> None:
    out = DATA / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"{kind}-{stamp}.json").write_text(json.dumps([asdict(m) for m in results], indent=1))
    (out / f"{kind}-{stamp}.md").write_text(text)
    log(f"raw results: {out}/{kind}-{stamp}.json")


# -- modes ---------------------------------------------------------------------


def compile_once(c: Corpus) -> None:
    """One unmeasured scan, so that pacscopy's bytecode is written before the first measured run."""
    (DATA / "tmp").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=DATA / "tmp") as tmp:
        run_measured([PACSCOPY, "scan", str(c.root), "--index", str(Path(tmp) / "i.duckdb"), "-q"],
                     Path(tmp) / "compile.out")
        if BASE is not None:
            run_measured([PACSCOPY, "scan", str(c.root), "--index", str(Path(tmp) / "b.duckdb"), "-q"],
                         Path(tmp) / "compile-base.out", {**ENV, "PYTHONPATH": str(BASE)})


def cmd_scan(args: argparse.Namespace, argv: list[str]) -> None:
    global TOOLS, BASE
    if args.base:
        BASE = args.base.resolve()
        if not (BASE / "pacscopy" / "__init__.py").exists():
            raise SystemExit(f"bench: --base {args.base} holds no pacscopy/ package")
        TOOLS = (*TOOLS, "base")
    runs = args.runs or (3 if args.quick else 5)
    div = 10 if args.quick else 1
    wanted = [c for c in CORPORA if not args.only or any(o.lower() in c[0].lower() for o in args.only)]
    corpora = [ensure_corpus(name, max(2, n // div), size, frames) for name, n, size, frames in wanted]
    startup = ensure_corpus(*STARTUP)
    for c in [*corpora, startup]:
        warm(c)
    compile_once(startup)
    results: list[Measure] = []
    (DATA / "tmp").mkdir(parents=True, exist_ok=True)
    for c in [*corpora, startup]:
        for r in range(runs):
            k = r % len(TOOLS)
            order = TOOLS[k:] + TOOLS[:k]  # rotate: no tool always goes first
            for tool in order:
                with tempfile.TemporaryDirectory(dir=DATA / "tmp") as tmp:
                    m = measure(tool, c, r + 1, Path(tmp))
                results.append(m)
                log(f"{c.name:>20} run {r + 1}/{runs} {tool:>5}: {m.wall_s:6.2f} s (work {m.loop_s or 0:5.2f} s, "
                    f"CPU {m.cpu_s:5.2f} s) {m.files_s:8,.0f} files/s {m.mb_s:7,.0f} MB/s  "
                    f"RSS {m.tree_rss_mb:4,.0f} MB")
    text = report_scan(corpora, startup, results, runs, argv)
    save("scan", results, text)
    print(text)


def cmd_scan_rss(args: argparse.Namespace, argv: list[str]) -> None:
    count = args.files or (RSS_FILES // 10 if args.quick else RSS_FILES)
    c = ensure_corpus(f"{count:,} × 2 KB", count, RSS_SIZE, 1)
    warm(c)
    compile_once(ensure_corpus(*STARTUP))
    results = []
    (DATA / "tmp").mkdir(parents=True, exist_ok=True)
    for r in range(args.runs or 1):
        with tempfile.TemporaryDirectory(dir=DATA / "tmp") as tmp:
            m = measure("scan", c, r + 1, Path(tmp))
        results.append(m)
        log(f"scan-rss run {r + 1}: {m.wall_s:.1f} s, {m.files_s:,.0f} files/s, peak tree RSS "
            f"{m.tree_rss_mb:,.0f} MB (PSS {m.tree_pss_mb:,.0f} MB, largest process {m.max_proc_rss_mb:,.0f} MB)")
    rss, pss = med(results, "tree_rss_mb"), med(results, "tree_pss_mb")
    L = ["## Scan memory", ""] + environment() + [
        f"- command: `scripts/bench {' '.join(argv)}` ({len(results)} run(s); medians)",
        "",
        "| files | MB | wall s | files/s | peak RSS (tree, summed) | peak PSS (tree) | largest process | processes |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|",
        f"| {len(c.files):,} | {c.nbytes / 1e6:,.0f} | {med(results, 'wall_s'):.1f} | {med(results, 'files_s'):,.0f} "
        f"| {rss:,.0f} MB | {pss:,.0f} MB | {med(results, 'max_proc_rss_mb'):,.0f} MB "
        f"| {max(m.procs for m in results)} |",
        "",
        f"Goal: RSS under 300 MB while scanning {len(c.files):,} files: "
        f"**{'met' if rss < 300 else 'not met'}** ({rss:,.0f} MB RSS summed over the main process and the "
        f"worker processes; {pss:,.0f} MB counting shared pages once).",
    ]
    text = "\n".join(L) + "\n"
    save("scan-rss", results, text)
    print(text)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="scripts/bench", description="pacscopy benchmarks (see BENCHMARKS.md)")
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("scan", help="scan vs naive dcmread loop vs raw read+xxh3 on three corpora")
    s.add_argument("--runs", type=int, help="runs per corpus and tool (default 5; --quick: 3)")
    s.add_argument("--quick", action="store_true", help="smoke test: a tenth of the files, 3 runs")
    s.add_argument("--only", action="append", help="only corpora whose name contains this (repeatable)")
    s.add_argument("--base", type=Path, help="another pacscopy checkout, scanned too in the same runs (PYTHONPATH)")
    r = sub.add_parser("scan-rss", help="peak RSS of the scan's process tree over 200,000 tiny files")
    r.add_argument("--runs", type=int, help="runs (default 1)")
    r.add_argument("--files", type=int, help=f"number of files (default {RSS_FILES:,})")
    r.add_argument("--quick", action="store_true", help=f"smoke test: {RSS_FILES // 10:,} files")
    args = ap.parse_args(argv)
    if args.mode == "scan":
        cmd_scan(args, argv)
    else:
        cmd_scan_rss(args, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
