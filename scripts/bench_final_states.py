"""The full final-states evaluation, 0023's narrow body vs 0017/0021's, side by side (issue 12).

    python scripts/bench_final_states.py --index PATH [--runs 3] [--what instances,reconcile]

PATH: a checked index (scripts/bench make-index, then pacscopy check). It is opened read-write once
(so that every migration applies), then each run is a process of its own, read-only, at pacscopy's
default settings (1 GB DuckDB memory limit, a thread per core), alternating old and new:

- instances: every planned instance's state, bytes and warning into a temporary table (what status's
  first count and every recount keep in status_instances: ops/status/instance_states);
- reconcile: final_states with its reasons and whether it is on record into a temporary table (what
  reconcile's materialise computes).

The old body: the macros 0023 replaced, as temporary macros (pacscopy.testing.books_reference).
Prints per run wall, CPU seconds (user+sys) and peak RSS, then the medians.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = "NEWPACS@127.0.0.1:11112"  # pacscopy.testing.scale.TARGET

OLD_INSTANCES = """
SELECT $target AS target, md5_number(f.sop_instance_uid) AS sop_key, f.final_state,
       coalesce(a.size, 0)::BIGINT AS bytes, coalesce(s.with_warning, false) AS warning
FROM final_states_of_0021($target, false) f
LEFT JOIN (SELECT sop_instance_uid, size FROM plan_auto) a USING (sop_instance_uid)
LEFT JOIN (SELECT sop_instance_uid, with_warning FROM stored_content_of_0021(false) WHERE target = $target) s
       USING (sop_instance_uid)"""
OLD_RECONCILE = """
SELECT f.*, s.sop_instance_uid IS NOT NULL AS on_record
FROM final_states_of_0021($target, false) f
LEFT JOIN (SELECT sop_instance_uid FROM stored_content_of_0021(false) WHERE target = $target) s USING (sop_instance_uid)"""
NEW_RECONCILE = """
SELECT sop_instance_uid, study_instance_uid, patient_id, disposition, final_state, reason, duplicate_files_skipped,
       stored AS on_record
FROM final_states_wide_of($target, false)"""


def one(index: str, body: str, what: str) -> None:
    """One evaluation in this process; prints 'wall cpu maxrss_kb rows'."""
    from pacscopy.index import load_sql, open_index
    from pacscopy.testing.books_reference import reference_macros

    con = open_index(index, read_only=True)
    if body == "old":
        for stmt in reference_macros(temp=True):
            con.execute(stmt)
        sql = OLD_INSTANCES if what == "instances" else OLD_RECONCILE
    else:
        sql = load_sql("ops/status/instance_states").strip().rstrip(";") if what == "instances" else NEW_RECONCILE
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.monotonic()
    con.execute(f"CREATE TEMP TABLE bench_out AS {sql}", {"target": TARGET})
    wall = time.monotonic() - t
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    n = con.execute("SELECT count(*) FROM bench_out").fetchone()
    con.close()
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    print(f"{wall:.2f} {cpu:.2f} {r1.ru_maxrss} {n[0] if n else 0}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--what", default="instances,reconcile")
    ap.add_argument("--one", nargs=2, metavar=("BODY", "WHAT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        one(a.index, a.one[0], a.one[1])
        return
    from pacscopy.index import open_index

    open_index(a.index).close()  # migrate
    results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    for what in a.what.split(","):
        for n in range(a.runs):
            for body in (("old", "new") if n % 2 == 0 else ("new", "old")):
                load = os.getloadavg()[0]
                out = subprocess.run([sys.executable, __file__, "--index", a.index, "--one", body, what],
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{what} {body}: exit {out.returncode}: {out.stderr.strip().splitlines()[-1:]}",
                          file=sys.stderr)
                    continue
                wall, cpu, rss, rows = out.stdout.split()
                results.setdefault((what, body), []).append((float(wall), float(cpu), int(rss)))
                print(f"{what} {body} run {n + 1}: {float(wall):.1f} s wall, {float(cpu):.1f} CPU s, "
                      f"peak RSS {int(rss) / 1024:.0f} MB, {int(rows):,} rows, load {load:.1f}", file=sys.stderr)
    print("| evaluation | body | runs | wall (median) | CPU s (median) | peak RSS (max) |\n|---|---|--:|--:|--:|--:|")
    for (what, body), rs in results.items():
        print(f"| {what} | {body} | {len(rs)} | {statistics.median(r[0] for r in rs):.1f} s | "
              f"{statistics.median(r[1] for r in rs):.1f} | {max(r[2] for r in rs) / 1024:.0f} MB |")


if __name__ == "__main__":
    main()
