"""The send benchmark behind ``scripts/bench send``.

Side by side in one run, on generated corpora (page cache warm), into three
receivers on loopback, each started fresh for every single measurement:

* ``orthanc``: Orthanc, a real PACS (SQLite index + files on disk), with the
  temporary configuration of ``tests/peers.py``;
* ``storescp``: DCMTK ``storescp +B --fork``, writing every object to disk;
* ``ignore``: DCMTK ``storescp --ignore --fork``, receiving and answering but
  storing nothing (the protocol cost only);
* ``nagle``: ``storescp +B --fork`` started *without* ``TCP_NODELAY=1``, as a
  DCMTK-based PACS usually runs: Nagle's algorithm holds part of every
  response until the sender's (delayed) ACK (200 files of 0.5 MB only).

Senders:

* DCMTK ``storescu -aec AE +sd +r 127.0.0.1 PORT CORPUS`` (one association, its only mode);
* ``pacscopy send --target AE@127.0.0.1:PORT --index COPY -q --associations N``
  for N = 1, 2, 4, each time on a fresh copy of an index built once per corpus
  (``pacscopy scan`` + ``pacscopy check``), so that nothing is recorded as stored.

Every peer but ``nagle`` and every sender runs with ``TCP_NODELAY=1`` in its
environment (DCMTK and Orthanc leave Nagle's algorithm on otherwise). ``--fork`` lets storescp
take several associations at once; storescu gets the same receiver.

Each sender is a subprocess timed from ``Popen`` to ``waitpid`` (start-up
included; for pacscopy also the "work" time of the run as recorded in the
index's ``send_runs``). A run counts only if the sender exits with 0 and the
receiver holds every instance: files in storescp's output folder, Orthanc's
``/statistics`` ``CountInstances``, or ``Received Store Request`` lines in the
log of ``storescp --ignore -v``; for pacscopy the copy of the index must also
record every instance as stored. Every 50 ms the summed RSS of the sender's
process tree (main process, forkserver, workers) is sampled from ``/proc``;
reported: the peak, and the samples nearest 10 %, 50 % and 90 % of the run.
The CPU time of the sender's and the receiver's process trees is sampled too
(both share the machine's cores). The order of the senders rotates from run
to run. Reported: medians.

A markdown report goes to stdout, progress to stderr; the report and the raw
measurements are kept under ``bench-data/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_scan as bs  # noqa: E402  (the scan benchmark: corpora, environment, /proc helpers)
from bench_scan import DATA, PACSCOPY, REPO, Corpus, ensure_corpus, environment, log, warm  # noqa: E402


def _load_peers():  # tests/peers.py, without putting the checkout first on sys.path
    spec = importlib.util.spec_from_file_location("pacscopy_bench_peers", REPO / "tests" / "peers.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


peers = _load_peers()

# name, files, bytes per file; --quick divides the file counts by 10.
CORPORA = [
    ("0.5 MB", 4_000, 500_000, ("orthanc", "storescp", "ignore")),
    ("10 KB", 50_000, 10_000, ("storescp", "ignore")),
    # a target with Nagle's algorithm on (DCMTK without TCP_NODELAY=1): storescu needs ~45 ms per C-STORE
    ("0.5 MB, Nagle on", 200, 500_000, ("nagle",)),
]
RECEIVERS = {
    "orthanc": "Orthanc (index + files on disk)",
    "storescp": "storescp +B --fork (files on disk)",
    "ignore": "storescp --ignore --fork (protocol only)",
    "nagle": "storescp +B --fork, Nagle on (no TCP_NODELAY in its environment)",
}
ASSOCIATIONS = (1, 2, 4)
STORESCU = "storescu"
INTERVAL = 0.05  # s between /proc samples
SEND_TIMEOUT = 900  # s: a sender still running then is killed and the run counts as failed
ENV = dict(peers.PEER_ENV)  # os.environ + TCP_NODELAY=1, for peers and senders alike
# A user's pacscopy runs from compiled bytecode: a PYTHONDONTWRITEBYTECODE left in the environment
# would make every run compile pacscopy's modules again (~0.05 s of start-up each time).
ENV.pop("PYTHONDONTWRITEBYTECODE", None)


def sender_label(s: str) -> str:
    return "`storescu`" if s == STORESCU else f"`pacscopy send` ×{s.split('-')[1]}"


# -- receivers -----------------------------------------------------------------


@dataclass
class Receiver:
    kind: str
    ae: str
    port: int
    pid: int
    count: Callable[[], int]  # instances the receiver holds (or, --ignore: has received)
    cmd: list[str]


@contextlib.contextmanager
def receiver(kind: str, tmp: Path) -> Iterator[Receiver]:
    """A fresh receiver on a free port; stopped (and its storage left to ``tmp``'s owner) afterwards."""
    if kind == "orthanc":
        with peers.orthanc(tmp) as p:
            def count() -> int:
                return int(peers.orthanc_json(p, "/statistics")["CountInstances"])
            yield Receiver(kind, p.ae, p.port, p.proc.pid, count, ["Orthanc", str(p.storage / "orthanc.json")])
        return
    exe = shutil.which("storescp")
    if not exe:
        raise SystemExit("bench: storescp is not installed (scripts/setup installs dcmtk)")
    port = peers.free_port()
    storage = tmp / f"storescp-{port}"
    storage.mkdir(parents=True)
    log_path = tmp / f"storescp-{port}.log"
    env = None
    if kind in ("storescp", "nagle"):
        cmd = [exe, "-aet", "STORESCP", "-od", str(storage), "+B", "--fork", str(port)]
        if kind == "nagle":
            env = {k: v for k, v in peers.PEER_ENV.items() if k != "TCP_NODELAY"}

        def count() -> int:
            return sum(1 for _ in os.scandir(storage))
    else:
        # -v: one "Received Store Request" line per C-STORE, the receiver's own count
        cmd = [exe, "-aet", "STORESCP", "--ignore", "-v", "--fork", str(port)]

        def count() -> int:
            with open(log_path, "rb") as f:
                return f.read().count(b"Received Store Request")
    with peers._run(cmd, "STORESCP", port, storage, log_path, env=env) as p:
        yield Receiver(kind, "STORESCP", port, p.proc.pid, count, cmd)


def wait_count(rcv: Receiver, want: int, timeout: float = 10.0) -> int:
    """The receiver's count once it reaches ``want`` (or stops moving for ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    n = rcv.count()
    while n < want and time.monotonic() < deadline:
        time.sleep(0.1)
        n = rcv.count()
    return n


# -- sampling ------------------------------------------------------------------


class Sampler(threading.Thread):
    """Every ``INTERVAL`` s: summed RSS of the sender's tree (timeline), CPU of both trees.

    CPU: the last reading of every process seen (a process living less than one
    interval is missed, so the totals are lower bounds).
    """

    def __init__(self, sender: int, receiver: int) -> None:
        super().__init__(daemon=True)
        self.sender, self.receiver = sender, receiver
        self.t0 = time.perf_counter()
        self.timeline: list[tuple[float, int]] = []  # (seconds since start, summed RSS kB)
        self.cpu_sender: dict[int, float] = {}
        self.cpu_receiver: dict[int, float] = {}
        self.rcv_base = self._receiver_cpu_now()
        self.max_procs = 0
        self.done = threading.Event()

    def _receiver_cpu_now(self) -> dict[int, float]:
        out = {}
        for p in bs._tree(self.receiver):
            c = bs._cpu_s(p)
            if c is not None:
                out[p] = c
        return out

    def run(self) -> None:
        while not self.done.is_set():
            t = time.perf_counter() - self.t0
            pids = bs._tree(self.sender)
            total = 0
            for p in pids:
                total += bs._rss_kb(p)
                c = bs._cpu_s(p)
                if c is not None:
                    self.cpu_sender[p] = c
            self.timeline.append((t, total))
            self.max_procs = max(self.max_procs, len(pids))
            self.cpu_receiver.update(self._receiver_cpu_now())
            self.done.wait(INTERVAL)

    def finish(self) -> None:
        self.done.set()
        self.join()
        self.cpu_receiver.update(self._receiver_cpu_now())

    @property
    def sender_cpu(self) -> float:
        return sum(self.cpu_sender.values())

    @property
    def receiver_cpu(self) -> float:
        # storescp --fork: a child per association; Orthanc: threads of one process
        return sum(c - self.rcv_base.get(p, 0.0) for p, c in self.cpu_receiver.items())

    def rss_at(self, frac: float, wall: float) -> float:
        """Summed RSS (MB) of the sample nearest ``frac`` of the run (0 when there is none)."""
        pts = [(t, r) for t, r in self.timeline if r > 0]
        if not pts:
            return 0.0
        return min(pts, key=lambda x: abs(x[0] - frac * wall))[1] / 1024

    @property
    def peak_mb(self) -> float:
        return max((r for _, r in self.timeline), default=0) / 1024


# -- one measurement -------------------------------------------------------------


@dataclass
class SendMeasure:
    corpus: str
    receiver: str
    sender: str  # "storescu" or "pacscopy-N"
    run: int
    files: int
    nbytes: int
    ok: bool = False
    error: str | None = None
    wall_s: float = 0.0
    work_s: float | None = None  # pacscopy: the run as recorded in send_runs
    received: int = 0
    retries: int = 0  # pacscopy: attempts recorded as 'retry' in transfers
    max_store_s: float | None = None  # pacscopy: the slowest single attempt (a stall shows here)
    sender_cpu_s: float = 0.0
    receiver_cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    rss10_mb: float = 0.0
    rss50_mb: float = 0.0
    rss90_mb: float = 0.0
    procs: int = 0
    samples: int = 0
    load: float = 0.0  # 1-minute load average when the measure started
    timeline: list[tuple[float, int]] = field(default_factory=list)

    @property
    def files_s(self) -> float:
        return self.files / self.wall_s

    @property
    def mb_s(self) -> float:
        return self.nbytes / 1e6 / self.wall_s

    @property
    def work_files_s(self) -> float | None:
        return self.files / self.work_s if self.work_s else None


def index_counts(index: Path) -> tuple[int, int, int, float | None, float | None]:
    """(instances stored, retries, failed, seconds of the run, slowest attempt) from a copy of the index."""
    import duckdb

    con = duckdb.connect(str(index), read_only=True)
    try:
        stored, retries, failed, slowest = con.execute(
            "SELECT count(DISTINCT sop_instance_uid) FILTER (WHERE outcome IN ('stored', 'warning')), "
            "count(*) FILTER (WHERE outcome = 'retry'), count(*) FILTER (WHERE outcome = 'failed'), "
            "max(epoch_us(finished) - epoch_us(started)) / 1e6 FROM transfers").fetchone()
        secs = con.execute(
            "SELECT (epoch_us(max(finished)) - epoch_us(min(started))) / 1e6 FROM send_runs").fetchone()[0]
    finally:
        con.close()
    return int(stored), int(retries), int(failed), secs, slowest


def measure(c: Corpus, kind: str, sender: str, run: int, base_index: Path | None, tmp: Path) -> SendMeasure:
    m = SendMeasure(c.name, kind, sender, run, len(c.files), c.nbytes, load=os.getloadavg()[0])
    out = tmp / f"{sender}.out"
    with receiver(kind, tmp) as rcv:
        if sender == STORESCU:
            cmd = [STORESCU, "-aec", rcv.ae, "+sd", "+r", "127.0.0.1", str(rcv.port), str(c.root)]
            index = None
        else:
            assert base_index is not None
            index = tmp / "send.duckdb"  # a fresh copy: nothing recorded as stored yet
            shutil.copyfile(base_index, index)
            if base_index.with_name(base_index.name + ".wal").exists():
                shutil.copyfile(base_index.with_name(base_index.name + ".wal"), index.with_name("send.duckdb.wal"))
            cmd = [PACSCOPY, "send", "--target", f"{rcv.ae}@127.0.0.1:{rcv.port}", "--index", str(index), "-q",
                   "--associations", sender.split("-")[1]]
        with open(out, "wb") as o:
            t = time.perf_counter()
            p = subprocess.Popen(cmd, stdout=o, stderr=subprocess.STDOUT, cwd=tmp, env=ENV)
            s = Sampler(p.pid, rcv.pid)
            s.t0 = t
            s.start()
            try:
                p.wait(timeout=SEND_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            m.wall_s = time.perf_counter() - t
        s.finish()
        m.received = wait_count(rcv, m.files)
    m.sender_cpu_s, m.receiver_cpu_s = s.sender_cpu, s.receiver_cpu
    m.peak_rss_mb, m.procs, m.samples = s.peak_mb, s.max_procs, len(s.timeline)
    m.rss10_mb, m.rss50_mb, m.rss90_mb = (s.rss_at(f, m.wall_s) for f in (0.1, 0.5, 0.9))
    m.timeline = [(round(t, 3), r) for t, r in s.timeline]
    problems = []
    if p.returncode != 0:
        problems.append(f"exit code {p.returncode}")
    if index is not None:
        stored, m.retries, failed, m.work_s, m.max_store_s = index_counts(index)
    # storescp --ignore counts C-STORE requests: an instance sent again after a retry counts twice
    if m.received < m.files or (m.received > m.files and (kind != "ignore" or m.received - m.files > m.retries)):
        problems.append(f"the receiver holds {m.received} of {m.files} instances")
    if index is not None:
        if stored != m.files or failed:
            problems.append(f"the index records {stored} stored and {failed} failed of {m.files}")
    if problems:
        tail = out.read_text(errors="replace")[-1500:]
        m.error = "; ".join(problems)
        log(f"  FAILED {sender} into {kind}: {m.error}\n{tail}")
    m.ok = not problems
    return m


def build_index(c: Corpus, dest: Path) -> Path:
    """``pacscopy scan`` + ``pacscopy check`` once per corpus; every instance must be planned ``send``."""
    import duckdb

    index = dest / f"base-{c.root.name}.duckdb"
    t = time.monotonic()
    for cmd in ([PACSCOPY, "scan", str(c.root), "--index", str(index), "-q"],
                [PACSCOPY, "check", "--index", str(index), "-q"]):
        r = subprocess.run(cmd, cwd=dest, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"bench: {' '.join(cmd)} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    con = duckdb.connect(str(index), read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM plan WHERE disposition = 'send'").fetchone()[0]
    finally:
        con.close()
    if n != len(c.files):
        raise SystemExit(f"bench: the plan of {index} sends {n} instances, the corpus has {len(c.files)}")
    log(f"index for {c.name}: {n} instances planned 'send' ({time.monotonic() - t:.1f} s)")
    return index


# -- reporting -----------------------------------------------------------------


def med(ms: list[SendMeasure], key: str) -> float:
    vals = [getattr(m, key) for m in ms]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else float("nan")


def report(plan: list[tuple[Corpus, tuple[str, ...]]], senders: list[str], results: list[SendMeasure],
           runs: int, argv: list[str]) -> str:
    def sel(c: Corpus, k: str, s: str) -> list[SendMeasure]:
        return [m for m in results if m.corpus == c.name and m.receiver == k and m.sender == s and m.ok]

    failed = [m for m in results if not m.ok]
    L = ["## Send: medians", ""] + environment() + [
        f"- command: `scripts/bench {' '.join(argv)}` ({runs} run(s) per corpus, receiver and sender; "
        "page cache warm; every receiver started fresh for every run)",
        f"- DCMTK {dcmtk_version()}, Orthanc {orthanc_version()}",
        "",
    ]
    goals: list[str] = []
    for c, kinds in plan:
        L += [
            f"### {c.name}: {len(c.files):,} files, {c.nbytes / 1e6:,.0f} MB", "",
            "End to end (wall time of the sender process, start-up included); *÷ storescu*: instances/s "
            "divided by storescu's into the same receiver; *work*: pacscopy's run as recorded in `send_runs` "
            "(no interpreter start-up and imports); CPU: user + system of the sender's and the receiver's "
            "process trees; RSS: summed over the sender's process tree, the peak and the samples nearest "
            "10 %, 50 % and 90 % of the run (at 10 % of a short run pacscopy may still be starting); "
            "*retries*: attempts pacscopy recorded as `retry` (sum over the runs), *slowest*: its slowest "
            "single C-STORE attempt (median over the runs; the DIMSE timeout is 20 s).",
            "",
            "| receiver | sender | instances/s | MB/s | ÷ storescu | wall s (min–max) | work instances/s "
            "| sender CPU s (µs/inst.) | receiver CPU s | peak RSS | RSS at 10 / 50 / 90 % | retries | slowest |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for k in kinds:
            base = sel(c, k, STORESCU)
            base_fs = med(base, "files_s") if base else float("nan")
            for s in senders:
                ms = sel(c, k, s)
                if not ms:
                    L.append(f"| {RECEIVERS[k]} | {sender_label(s)} | failed | | | | | | | | | | |")
                    continue
                fs = med(ms, "files_s")
                walls = [m.wall_s for m in ms]
                ratio = "—" if s == STORESCU else f"{fs / base_fs:.2f}×"
                wfs = med(ms, "work_files_s")
                cpu = med(ms, "sender_cpu_s")
                L.append(
                    f"| {RECEIVERS[k]} | {sender_label(s)} | {fs:,.0f} | {med(ms, 'mb_s'):,.0f} | {ratio} "
                    f"| {med(ms, 'wall_s'):.2f} ({min(walls):.2f}–{max(walls):.2f}) "
                    f"| {'' if wfs != wfs else f'{wfs:,.0f}'} | {cpu:.2f} ({cpu / len(c.files) * 1e6:,.0f}) "
                    f"| {med(ms, 'receiver_cpu_s'):.2f} | {med(ms, 'peak_rss_mb'):,.0f} MB "
                    f"| {med(ms, 'rss10_mb'):,.0f} / {med(ms, 'rss50_mb'):,.0f} / {med(ms, 'rss90_mb'):,.0f} MB "
                    + ("| | |" if s == STORESCU else
                       f"| {sum(m.retries for m in ms)} | {med(ms, 'max_store_s'):.2f} s |")
                )
                if s != STORESCU and s == senders[-1]:
                    r = fs / base_fs
                    want = {"orthanc": 1.5, "storescp": 1.0}.get(k) if c.name.startswith("0.5") else None
                    best = max((med(sel(c, k, x), "files_s") / base_fs, x) for x in senders
                               if x != STORESCU and sel(c, k, x))
                    verdict = (f"goal ≥ {want:.1f}×: **{'met' if r >= want else 'not met'}**" if want
                               else "no goal, reported")
                    goals.append(f"- {c.name} into {RECEIVERS[k]}: pacscopy with {s.split('-')[1]} associations = "
                                 f"{r:.2f}× storescu's instances/s ({verdict}); best: {best[0]:.2f}× with "
                                 f"{best[1].split('-')[1]}")
        L += ["", "Per run (issue 11: ratios of two measures taken back to back in the same run, then the "
              "median over the runs; *load*: the 1-minute load average at the start of each measure):", "",
              "| receiver | sender | ÷ storescu, per run | runs | load (min–max) |", "|---|---|--:|--:|--:|"]
        for k in kinds:
            for s in senders:
                if s == STORESCU:
                    continue
                pairs = [(m.wall_s, b.wall_s) for m in sel(c, k, s) for b in sel(c, k, STORESCU) if b.run == m.run]
                loads = [m.load for m in results if m.corpus == c.name and m.receiver == k]
                if pairs and loads:
                    L.append(f"| {RECEIVERS[k]} | {sender_label(s)} | **{statistics.median(b / a for a, b in pairs):.2f}×** "
                             f"| {len(pairs)} | {statistics.median(loads):.1f} ({min(loads):.1f}–{max(loads):.1f}) |")
        L.append("")
    # RSS flat: from the middle of each pacscopy run (start-up over) to 90 %
    growth = []
    for m in results:
        # runs of under 2 s are still starting at their midpoint: they say nothing about growth
        if m.ok and m.sender != STORESCU and m.rss50_mb and m.wall_s >= 2.0:
            growth.append((m.rss90_mb - m.rss50_mb, m))
    if growth:
        worst = max(growth, key=lambda g: g[0])
        flat = all(g <= max(10.0, 0.1 * m.rss50_mb) for g, m in growth)
        goals.append(f"- RSS flat over the run (RSS at 90 % − RSS at 50 % ≤ max(10 MB, 10 %), every pacscopy run): "
                     f"**{'met' if flat else 'not met'}**; largest change {worst[0]:+,.0f} MB "
                     f"({worst[1].corpus}, {worst[1].receiver}, {worst[1].sender}, run {worst[1].run})")
    L += ["Goals:", "", *goals, ""]
    if failed:
        L += ["Failed runs (left out of the medians):", ""]
        L += [f"- {m.corpus}, {m.receiver}, {m.sender}, run {m.run}: {m.error}" for m in failed]
        L.append("")
    L += [
        "Commands (PORT: a free port, a fresh receiver per run; CORPUS: the corpus folder; COPY: a fresh copy "
        "of the index built by `pacscopy scan CORPUS --index BASE -q && pacscopy check --index BASE -q`; "
        "every command with `TCP_NODELAY=1` in its environment):",
        "",
        "```sh",
        "storescp -aet STORESCP -od STORAGE +B --fork PORT          # storescp, files on disk",
        "storescp -aet STORESCP --ignore -v --fork PORT             # storescp --ignore (-v: its own count)",
        "Orthanc orthanc.json                                       # tests/peers.py orthanc() configuration",
        "storescu -aec STORESCP +sd +r 127.0.0.1 PORT CORPUS        # (-aec ORTHANC into Orthanc)",
        "pacscopy send --target STORESCP@127.0.0.1:PORT --index COPY -q --associations N",
        "```",
    ]
    return "\n".join(L) + "\n"


def dcmtk_version() -> str:
    try:
        out = subprocess.run([STORESCU, "--version"], capture_output=True, text=True).stdout
        return out.split()[2] if out else "?"
    except (OSError, IndexError):
        return "?"


def orthanc_version() -> str:
    try:
        out = subprocess.run(["Orthanc", "--version"], capture_output=True, text=True).stdout
        return out.split()[1] if out else "?"
    except (OSError, IndexError):
        return "?"


def save(results: list[SendMeasure], text: str) -> None:
    out = DATA / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for m in results:
        d = {k: v for k, v in m.__dict__.items()}
        rows.append(d)
    (out / f"send-{stamp}.json").write_text(json.dumps(rows, indent=1))
    (out / f"send-{stamp}.md").write_text(text)
    log(f"report and raw results: {out}/send-{stamp}.md, .json")


# -- main ----------------------------------------------------------------------


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="scripts/bench send", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, help="runs per corpus, receiver and sender (default 3; --quick: 1)")
    ap.add_argument("--quick", action="store_true", help="smoke test: a tenth of the files, 1 run")
    ap.add_argument("--only", action="append", help="only corpora whose name contains this (repeatable)")
    ap.add_argument("--receivers", help=f"comma-separated subset of {','.join(RECEIVERS)}")
    ap.add_argument("--associations", default=",".join(map(str, ASSOCIATIONS)),
                    help="comma-separated association counts for pacscopy (default 1,2,4)")
    args = ap.parse_args(argv[1:])
    runs = args.runs or (1 if args.quick else 3)
    div = 10 if args.quick else 1
    want_rcv = set(args.receivers.split(",")) if args.receivers else set(RECEIVERS)
    if want_rcv - set(RECEIVERS):
        raise SystemExit(f"bench: unknown receivers {sorted(want_rcv - set(RECEIVERS))}")
    senders = [STORESCU] + [f"pacscopy-{int(n)}" for n in args.associations.split(",")]
    for exe in ("storescu", "storescp", "Orthanc"):
        if not shutil.which(exe):
            raise SystemExit(f"bench: {exe} is not installed (scripts/setup installs dcmtk and orthanc)")
    plan = []
    for name, n, size, kinds in CORPORA:
        if args.only and not any(o.lower() in name.lower() for o in args.only):
            continue
        kinds = tuple(k for k in kinds if k in want_rcv)
        if kinds:
            plan.append((ensure_corpus(name, max(2, n // div), size, 1), kinds))
    (DATA / "tmp").mkdir(parents=True, exist_ok=True)
    results: list[SendMeasure] = []
    with tempfile.TemporaryDirectory(dir=DATA / "tmp", prefix="send-") as session:
        for c, kinds in plan:
            warm(c)
            base = build_index(c, Path(session))
            for r in range(runs):
                for k in kinds:
                    order = senders[r % len(senders):] + senders[: r % len(senders)]
                    for s in order:
                        with tempfile.TemporaryDirectory(dir=DATA / "tmp", prefix="run-") as tmp:
                            m = measure(c, k, s, r + 1, base, Path(tmp))
                        os.sync()  # the receiver's writes reach the disk before the next run starts
                        results.append(m)
                        log(f"{c.name:>7} run {r + 1}/{runs} {k:>8} {s:>10}: {m.wall_s:6.2f} s "
                            f"{m.files_s:7,.0f} inst/s {m.mb_s:6,.0f} MB/s  CPU {m.sender_cpu_s:5.2f} s "
                            f"(receiver {m.receiver_cpu_s:5.2f} s)  RSS {m.rss10_mb:4,.0f}/{m.rss50_mb:4,.0f}/"
                            f"{m.rss90_mb:4,.0f} MB peak {m.peak_rss_mb:4,.0f} MB"
                            + (f"  retries {m.retries}, slowest {m.max_store_s:.2f} s" if m.max_store_s else "")
                            + ("" if m.ok else f"  FAILED: {m.error}"))
    text = report(plan, senders, results, runs, argv)
    save(results, text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
