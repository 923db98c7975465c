"""The concurrent-use benchmark behind ``scripts/bench concurrent-send`` (issue 13).

Send throughput of one ``pacscopy send`` into DCMTK ``storescp +B --fork`` (writing every object
to disk) alone, and with another process looking every second, in one of these ways (``--variants``):

- ``status``: ``pacscopy status`` every second, each a whole process (issue 13's case);
- ``status+query``: ``pacscopy status`` and ``pacscopy query`` in turn, one a second;
- ``watch``: one ``pacscopy status --watch 1`` for the whole send.

A poll starts one second after the previous one started, or when it ends. With ``--base DIR`` (a
``git archive`` of another commit's ``pacscopy`` and ``sql``), every variant also runs with that
code (``PYTHONPATH=DIR``) in the same rounds: before and after, side by side. In each round every
configuration runs once, in an order that rotates from round to round, each on a fresh copy of one
index (scanned and checked once) and a fresh storescp. A run counts only if the send exits 0,
storescp holds every instance and every poll succeeded. Before each send (untimed) one ``status`` keeps
status's figures for the target, as on any index where status was run once (``--figures none``: not).

Reported per configuration: medians of the send's wall time and of its steady-state rate (20-80 %
of the instances stored), the median over rounds of each run's ratio to the same round's send
alone with the same code (goal: within 5 %), the send's start (to 20 %) and end (from 80 %), its
CPU seconds (its whole process tree), each poll's latency and CPU seconds (a status that showed the
figures the send published counted apart), and the load average and CPU steal (``/proc/stat``)
during the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_send as bsend  # noqa: E402  (receivers, peers, environment)
from bench_books import checked_base, corpus, send_args, work_dir  # noqa: E402
from bench_scan import DATA, PACSCOPY, environment, log  # noqa: E402

ENV = bsend.ENV
VARIANTS = ("alone", "status", "status+query", "watch")
QUERY = "SELECT outcome, count(*) FROM transfers GROUP BY 1"


@dataclass
class Measure:
    code: str  # "" (this checkout) or "base"
    variant: str
    round: int
    wall: float = 0.0
    steady: float = float("nan")  # instances/s from 20 % to 80 % of the corpus stored
    send_cpu: float = 0.0  # CPU seconds of the send's process tree
    ok: bool = False
    load: float = 0.0  # 1-minute load average at the start
    steal: float = 0.0  # share of all CPU time stolen by the hypervisor during the run
    busy: float = 0.0  # share of all CPU time not idle during the run
    start: float = float("nan")  # seconds to 20 % of the corpus stored
    end: float = float("nan")  # seconds from 80 % stored to the send's exit
    polls: dict[str, list[float]] = field(default_factory=dict)  # "status", "status-live", "query": latency per call
    poll_cpu: dict[str, list[float]] = field(default_factory=dict)  # CPU seconds per call
    live: int = 0  # status calls (or --watch refreshes) that showed the running send's published figures
    refreshes: int = 0  # status --watch: refreshes shown
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.variant} (base)" if self.code else self.variant


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[int, str, str, float]:
    """Run ``cmd`` to its end: (exit code, stdout, stderr, CPU seconds of its process tree)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return p.returncode, out.read().decode(), err.read().decode(), ru.ru_utime + ru.ru_stime


def poll(cmds: list[tuple[str, list[str]]], env: dict[str, str], stop: threading.Event, m: Measure) -> None:
    """Every second until ``stop``: the commands ``cmds`` in turn, each a process of its own."""
    n = 0
    while not stop.is_set():
        key, cmd = cmds[n % len(cmds)]
        t0 = time.monotonic()
        rc, out, err, cpu = run_child(cmd, env)
        took = time.monotonic() - t0
        if rc != 0:
            m.errors.append(f"{key}: {err.strip()[-300:]}")
        elif key == "status" and "(from the running send)" in out:
            m.live += 1
            key = "status-live"  # the figures the send published: neither DuckDB nor the index
        m.polls.setdefault(key, []).append(took)
        m.poll_cpu.setdefault(key, []).append(cpu)
        n += 1
        stop.wait(max(0.0, 1.0 - took))


def phases(timeline: list[tuple[float, int]], files: int, wall: float) -> tuple[float, float, float]:
    """(seconds to 20 % of the corpus stored, instances/s from 20 % to 80 %: the send's steady state,
    seconds from 80 % to the send's exit): its start (opening the index, the spool), its steady state,
    its end (the last merge)."""
    lo = next((t for t, n in timeline if n >= 0.2 * files), None)
    hi = next((t for t, n in timeline if n >= 0.8 * files), None)
    if lo is None or hi is None or hi <= lo:
        return float("nan"), float("nan"), float("nan")
    return lo, 0.6 * files / (hi - lo), wall - hi


def cpu_times() -> tuple[int, int, int]:
    """(all, idle + iowait, steal) jiffies since boot, from /proc/stat's cpu line."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4], v[7]


def measure(base: Path, files: int, m: Measure, tmp: Path, associations: int, env: dict[str, str],
            kept: bool) -> None:
    idx = tmp / "send.duckdb"
    shutil.copyfile(base, idx)
    with bsend.receiver("storescp", tmp) as rcv:
        target = f"{rcv.ae}@127.0.0.1:{rcv.port}"
        status = [str(PACSCOPY), "status", "--target", target, "--index", str(idx)]
        if kept:  # untimed: the figures kept, as on any index where status was run once for the target
            rc, _, err, _ = run_child(status, env)
            if rc != 0:
                raise SystemExit(f"bench: the status before the send failed ({rc}): {err.strip()}")
            # ... without its wish for the send's figures (status_cache.want_live): alone, a send publishes none
            Path(str(idx) + ".run", "status-wanted").unlink(missing_ok=True)
        cmds = {"status": [("status", status)],
                "status+query": [("status", status), ("query", [str(PACSCOPY), "query", QUERY, "--index", str(idx)])]}
        m.load = os.getloadavg()[0]
        c0 = cpu_times()
        stop = threading.Event()
        t0 = time.monotonic()
        send_err = tempfile.TemporaryFile()
        p = subprocess.Popen([str(PACSCOPY), "send", "--target", target, "--index", str(idx), "-q",
                              "--associations", str(associations)],
                             stdout=subprocess.DEVNULL, stderr=send_err, env=env)
        poller = threading.Thread(target=poll, args=(cmds[m.variant], env, stop, m)) \
            if m.variant in cmds else None
        watch = subprocess.Popen([*status, "--watch", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=env) if m.variant == "watch" else None
        if poller:
            poller.start()
        timeline: list[tuple[float, int]] = []  # (seconds since the start, instances storescp holds)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                timeline.append((time.monotonic() - t0, rcv.count()))
                done.wait(0.25)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            _, status_code, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status_code)
        finally:
            m.wall = time.monotonic() - t0
            done.set()
            sampler.join()
            stop.set()
        send_err.seek(0)
        err = send_err.read().decode()
        send_err.close()
        m.send_cpu = ru.ru_utime + ru.ru_stime
        c1 = cpu_times()
        m.steal = (c1[2] - c0[2]) / max(1, c1[0] - c0[0])
        m.busy = 1 - (c1[1] - c0[1]) / max(1, c1[0] - c0[0])
        if poller:
            poller.join()
        if watch is not None:
            watch.send_signal(signal.SIGINT)
            out, werr = watch.communicate(timeout=60)
            m.refreshes = out.count("\n-- ")
            m.live = out.count("(from the running send)")
            if watch.returncode != 0:
                m.errors.append(f"status --watch: exit {watch.returncode} {werr.strip()[-300:]}")
        got = bsend.wait_count(rcv, files)
    m.start, m.steady, m.end = phases(timeline, files, m.wall)
    m.ok = p.returncode == 0 and got >= files and not m.errors
    if not m.ok:
        log(f"run failed: send exit {p.returncode} {err.strip()[-300:]}; received {got}; errors {m.errors[:3]}")
    shutil.rmtree(str(idx) + ".run", ignore_errors=True)
    idx.unlink(missing_ok=True)


def main(argv: list[str]) -> None:
    ap = send_args("scripts/bench concurrent-send", __doc__, 5, "associations")
    ap.add_argument("--variants", default="alone,status,status+query,watch",
                    help=f"comma-separated, of {', '.join(VARIANTS)} (alone is always run)")
    ap.add_argument("--base", type=Path, help="also every variant with the pacscopy and sql in DIR (PYTHONPATH)")
    ap.add_argument("--figures", choices=("kept", "none"), default="kept",
                    help="kept (default): a status before each send, untimed, so that status's figures are kept "
                    "(every merge then keeps them current, alone or polled); none: the first poll counts them")
    args = ap.parse_args(argv)
    variants = ["alone", *[v for v in args.variants.split(",") if v and v != "alone"]]
    if bad := [v for v in variants if v not in VARIANTS]:
        ap.error(f"unknown variant(s) {', '.join(bad)}: choose from {', '.join(VARIANTS)}")
    if args.base is not None and not (args.base / "pacscopy" / "__init__.py").is_file():
        ap.error(f"--base {args.base}: no pacscopy package there (git archive COMMIT pacscopy sql | tar -x -C DIR)")
    configs = [("", v) for v in variants] + ([("base", v) for v in variants] if args.base else [])
    envs = {"": ENV, "base": {**ENV, "PYTHONPATH": str(args.base.resolve())} if args.base else ENV}
    root = corpus(args.files, args.size)
    results: list[Measure] = []
    with checked_base(root, "pacscopy-bench-concurrent-", args.work_dir) as (tmp, base):
        for r in range(args.runs):
            k = r % len(configs)
            for code, variant in configs[k:] + configs[:k]:  # the order rotates from round to round
                m = Measure(code, variant, r)
                with work_dir(tmp, f"run{r}-{code}-{variant}") as work:
                    measure(base, args.files, m, work, args.associations, envs[code], args.figures == "kept")
                log(f"round {r + 1}: {m.name}: {m.wall:.2f} s (start {m.start:.2f}, end {m.end:.2f}), steady "
                    f"{m.steady:.0f}/s, send CPU {m.send_cpu:.2f} s, "
                    f"ok={m.ok}, load {m.load:.2f}, steal {100 * m.steal:.0f} %"
                    + (f", {sum(len(v) for v in m.polls.values())} polls, {m.live} live" if m.polls else "")
                    + (f", {m.refreshes} refreshes" if variant == "watch" else ""))
                results.append(m)
    report(results, args, configs)


def _med(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def _pct(x: float) -> str:
    return f"{100 * (x - 1):+.1f} %" if x == x else "–"


def report(results: list[Measure], args: argparse.Namespace, configs: list[tuple[str, str]]) -> None:
    ok = [m for m in results if m.ok]
    alone = {(m.code, m.round): m for m in ok if m.variant == "alone"}

    def of(code: str, variant: str) -> list[Measure]:
        return [m for m in ok if m.code == code and m.variant == variant]

    cmd = (f"scripts/bench concurrent-send --files {args.files} --size {args.size} --runs {args.runs} "
           f"--associations {args.associations} --variants {args.variants} --figures {args.figures}"
           + (f" --base {args.base}" if args.base else "") + (f" --work-dir {args.work_dir}" if args.work_dir != DATA else ""))
    lines = [f"### Send alone vs with a look every second: {args.files} × {args.size // 1000} KB into storescp +B --fork",
             "", f"`{cmd}`; medians over the rounds whose runs stored everything; ratios per round against the "
             "send alone with the same code in the same round.", "",
             "| code | send | wall s | vs alone, wall (per round) | steady state inst/s | vs alone, steady (per round) "
             "| start, end s | send CPU s | per poll: latency s, CPU s (median) | load | steal | runs ok |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for code, variant in configs:
        ms = of(code, variant)
        pairs = [(alone[(m.code, m.round)], m) for m in ms if (m.code, m.round) in alone]
        wall_ratio = _med([a.wall / m.wall for a, m in pairs])  # throughput: > 1 faster than alone
        steady_ratio = _med([m.steady / a.steady for a, m in pairs])
        polls = []
        for key, label in (("status", "status from the index"), ("status-live", "status from the running send"),
                           ("query", "query")):
            lat = [x for m in ms for x in m.polls.get(key, [])]
            cpu = [x for m in ms for x in m.poll_cpu.get(key, [])]
            if lat:
                polls.append(f"{label} {_med(lat):.2f}, {_med(cpu):.2f} ({len(lat)} calls)")
        if variant == "watch":
            polls.append(f"{sum(m.refreshes for m in ms)} refreshes, {sum(m.live for m in ms)} from the running send")
        n = sum(1 for m in results if m.code == code and m.variant == variant)
        lines.append(f"| {'base' if code else 'this'} | {variant} | {_med([m.wall for m in ms]):.2f} "
                     f"| {'–' if variant == 'alone' else _pct(wall_ratio)} | {_med([m.steady for m in ms]):.0f} "
                     f"| {'–' if variant == 'alone' else _pct(steady_ratio)} "
                     f"| {_med([m.start for m in ms]):.2f}, {_med([m.end for m in ms]):.2f} | {_med([m.send_cpu for m in ms]):.2f} "
                     f"| {'; '.join(polls) or '–'} | {_med([m.load for m in ms]):.1f} "
                     f"| {100 * _med([m.steal for m in ms]):.0f} % | {len(ms)}/{n} |")
    lines += ["", "Per run (wall s): " + "; ".join(
        f"{code or 'this'} {variant}: " + ", ".join(f"{m.wall:.2f}" + ("" if m.ok else " (failed)")
                                                   for m in results if m.code == code and m.variant == variant)
        for code, variant in configs), "", *environment()]
    if args.base:
        lines.append(f"- base: PYTHONPATH={args.base.resolve()}")
    text = "\n".join(lines)
    print(text)
    out = DATA / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    (out / f"concurrent-send-{stamp}.md").write_text(text + "\n")
    (out / f"concurrent-send-{stamp}.json").write_text(json.dumps([asdict(m) for m in results], indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
