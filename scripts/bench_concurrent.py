"""The concurrent-use benchmark behind ``scripts/bench concurrent-send`` (issue 13).

Send throughput of one ``pacscopy send`` into DCMTK ``storescp +B --fork`` (writing every object
to disk) alone, and with ``pacscopy status`` and ``pacscopy query`` run from another process every
second throughout (each waits for the previous one: one poll a second at most, status and query in
turn); the latency of each ``status`` during the send (a whole process: start-up, the wait for the
index, the figures). The two configurations alternate run by run, each on a fresh copy of one
index (scanned and checked once) and a fresh storescp. A run counts only if the send exits 0 and
storescp holds every instance.

Reported: medians of N runs of the send's wall time, instances/s, the ratio polled/alone (goal:
within 5 %), status latency (median, 90th percentile, max), the load average before each run (a
2-core machine shared with other work).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_send as bsend  # noqa: E402  (receivers, peers, environment)
from bench_books import checked_base, corpus, run, send_args, work_dir  # noqa: E402
from bench_scan import DATA, PACSCOPY, environment, log  # noqa: E402

ENV = bsend.ENV


def poll(index: Path, target: str, stop: threading.Event, out: dict) -> None:
    """Every second until ``stop``: ``status`` and ``query`` in turn, from processes of their own."""
    n = 0
    while not stop.is_set():
        t0 = time.monotonic()
        if n % 2 == 0:
            cmd = [str(PACSCOPY), "status", "--target", target, "--index", str(index)]
        else:
            cmd = [str(PACSCOPY), "query", "SELECT outcome, count(*) FROM transfers GROUP BY 1", "--index", str(index)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
        took = time.monotonic() - t0
        key = "status" if n % 2 == 0 else "query"
        out.setdefault(key, []).append(took)
        if r.returncode != 0:
            out.setdefault("errors", []).append(f"{key}: {r.stderr.strip()[-300:]}")
        elif key == "status" and "is running" in r.stdout:
            out["said_running"] = out.get("said_running", 0) + 1
        n += 1
        stop.wait(max(0.0, 1.0 - took))


def steady(timeline: list[tuple[float, int]], files: int) -> float:
    """Instances/s while storescp went from 20 % to 80 % of the corpus: the send in its steady state,
    without its start (opening the index, the spool) and end (the last merge)."""
    lo = next((t for t, n in timeline if n >= 0.2 * files), None)
    hi = next((t for t, n in timeline if n >= 0.8 * files), None)
    if lo is None or hi is None or hi <= lo:
        return float("nan")
    return 0.6 * files / (hi - lo)


def measure(base: Path, files: int, polled: bool, tmp: Path, associations: int) -> dict:
    idx = tmp / "send.duckdb"
    shutil.copyfile(base, idx)
    polls: dict = {}
    with bsend.receiver("storescp", tmp) as rcv:
        target = f"{rcv.ae}@127.0.0.1:{rcv.port}"
        idle = []
        if polled:  # the reference for status's latency: the same command with no send running
            for _ in range(2):
                t = time.monotonic()
                run([str(PACSCOPY), "status", "--target", target, "--index", str(idx)])
                idle.append(time.monotonic() - t)
        load = os.getloadavg()[0]
        stop = threading.Event()
        t0 = time.monotonic()
        p = subprocess.Popen([str(PACSCOPY), "send", "--target", target, "--index", str(idx), "-q",
                              "--associations", str(associations)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        poller = threading.Thread(target=poll, args=(idx, target, stop, polls)) if polled else None
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
        out, err = p.communicate(timeout=bsend.SEND_TIMEOUT)
        wall = time.monotonic() - t0
        done.set()
        sampler.join()
        stop.set()
        if poller:
            poller.join()
        got = bsend.wait_count(rcv, files)
    ok = p.returncode == 0 and got >= files and not polls.get("errors")
    if not ok:
        log(f"run failed: send exit {p.returncode} {err.strip()[-300:]}; received {got}; "
            f"poll errors {polls.get('errors', [])[:3]}")
    shutil.rmtree(str(idx) + ".run", ignore_errors=True)
    idx.unlink(missing_ok=True)
    return {"polled": polled, "wall": wall, "ok": ok, "load": load, "received": got,
            "status": polls.get("status", []), "query": polls.get("query", []),
            "said_running": polls.get("said_running", 0), "idle_status": idle, "steady": steady(timeline, files)}


def main(argv: list[str]) -> None:
    ap = send_args("scripts/bench concurrent-send", __doc__, 5, "associations")
    args = ap.parse_args(argv)
    root = corpus(args.files, args.size)
    results: list[dict] = []
    with checked_base(root, "pacscopy-bench-concurrent-") as (tmp, base):
        for r in range(args.runs):
            for polled in ((False, True) if r % 2 == 0 else (True, False)):
                with work_dir(tmp, f"run{r}-{int(polled)}") as work:
                    m = measure(base, args.files, polled, work, args.associations)
                log(f"run {r + 1}: {'polled' if polled else 'alone'}: {m['wall']:.2f} s, ok={m['ok']}, "
                    f"load {m['load']:.2f}" + (f", {len(m['status'])} status" if polled else ""))
                results.append(m)
    report(results, args)


def report(results: list[dict], args: argparse.Namespace) -> None:
    def med(polled: bool, key: str) -> float:
        xs = [m[key] for m in results if m["polled"] == polled and m["ok"]]
        return statistics.median(xs) if xs else float("nan")

    alone, polled = med(False, "wall"), med(True, "wall")
    lat = sorted(x for m in results if m["polled"] and m["ok"] for x in m["status"])
    idle = sorted(x for m in results if m["polled"] and m["ok"] for x in m["idle_status"])
    # the configurations alternate run by run: the ratio of each pair is less exposed to the machine's load
    pairs = [(a["wall"], b["wall"]) for a, b in zip([m for m in results if not m["polled"]],
                                                    [m for m in results if m["polled"]]) if a["ok"] and b["ok"]]
    pair_ratio = statistics.median(w_alone / w_polled for w_alone, w_polled in pairs) if pairs else float("nan")
    spairs = [(a["steady"], b["steady"]) for a, b in zip([m for m in results if not m["polled"]],
                                                         [m for m in results if m["polled"]]) if a["ok"] and b["ok"]]
    steady_ratio = statistics.median(sp / sa for sa, sp in spairs) if spairs else float("nan")
    qlat = sorted(x for m in results if m["polled"] and m["ok"] for x in m["query"])

    def pct(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    lines = [f"### Send alone vs with `status` and `query` every second: {args.files} × {args.size // 1000} KB "
             "into storescp +B --fork",
             "",
             f"`scripts/bench concurrent-send --files {args.files} --size {args.size} --runs {args.runs} "
             f"--associations {args.associations}`; medians of the runs that stored everything.",
             "",
             "| send | wall (s) | instances/s | vs alone | steady state (20-80 %) instances/s | vs alone "
             "| load avg (1 min) before | runs ok |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    s_alone = med(False, "steady")
    for p, label in ((False, "alone (reference)"), (True, "with `status` + `query` polled every second")):
        w = med(p, "wall")
        n_ok = sum(1 for m in results if m["polled"] == p and m["ok"])
        n = sum(1 for m in results if m["polled"] == p)
        st = med(p, "steady")
        lines.append(f"| {label} | {w:.2f} | {args.files / w:.0f} | {alone / w:.3f} | {st:.0f} | {st / s_alone:.3f} "
                     f"| {med(p, 'load'):.2f} | {n_ok}/{n} |")
    lines += ["",
              f"Throughput with polling: {100 * (alone / polled - 1):+.1f} % against alone (ratio of the medians); "
              f"median of the per-run-pair ratios: {100 * (pair_ratio - 1):+.1f} % over {len(pairs)} pairs; "
              f"in the steady state (20-80 % of the instances stored), per-pair median "
              f"{100 * (steady_ratio - 1):+.1f} %. "
              f"`status` with no send running (the whole process, same load): median {pct(idle, 0.5):.2f} s; "
              f"during the send: median {pct(lat, 0.5):.2f} s, 90th percentile "
              f"{pct(lat, 0.9):.2f} s, max {max(lat, default=float('nan')):.2f} s over {len(lat)} calls; "
              f"`query`: median {pct(qlat, 0.5):.2f} s. Status said a send was running in "
              f"{sum(m['said_running'] for m in results if m['polled'])} of {len(lat)} calls.",
              "", *environment()]
    text = "\n".join(lines)
    print(text)
    out = DATA / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime('%Y%m%d-%H%M%S')
    (out / f"concurrent-send-{stamp}.md").write_text(text + "\n")
    (out / f"concurrent-send-{stamp}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
