"""The known files of one big scan root: what a rescan holds in memory while it walks (issue 12).

    scripts/bench known-files --index PATH --root ROOT [--finish]   (or: python scripts/bench_known.py ...)

Runs the scan's own ``start_root`` on ROOT (every file of the index under ROOT is loaded as the
rescan's known files), then, as if the walk had found none of them (a share that vanished),
takes what is left (``gone``) and, with ``--finish``, marks them missing through ``finish_root``
(PATH is changed: use a copy). No walk, no file read. Prints wall and CPU seconds of each part
and the process's peak RSS (``ru_maxrss``; no child processes). Works with older code too
(``start_root`` returning a dict of paths): run it from another checkout to compare.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    from pacscopy.scan.scan import ScanResult, _Hop, finish_root, start_root

    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--finish", action="store_true", help="mark them all missing (changes the index)")
    a = ap.parse_args()
    con = _Hop(str(a.index)).connect()
    assert con is not None
    rss0 = _rss_mb()
    w, c = time.monotonic(), _cpu()
    scan_id, known = start_root(con, a.root, "bench")
    load = (time.monotonic() - w, _cpu() - c)
    rss_load = _rss_mb()
    n = len(known)
    held = getattr(known, "nbytes", None)
    w, c = time.monotonic(), _cpu()
    if isinstance(known, dict):
        gone = [p for p, v in known.items() if v[2] != "missing"]
    else:
        gone = known.gone()
    del known
    left = (time.monotonic() - w, _cpu() - c)
    fin = (0.0, 0.0)
    if a.finish:
        w, c = time.monotonic(), _cpu()
        res = ScanResult(a.root, "bench", scan_id, missing=len(gone))
        finish_root(con, res, gone, time.monotonic())
        fin = (time.monotonic() - w, _cpu() - c)
    con.close()
    print(f"| known files | held (arrays) | RSS before | load: wall (CPU) | RSS after load | what is left: wall (CPU) "
          f"| mark missing: wall (CPU) | peak RSS |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|")
    print(f"| {n:,} | {'-' if held is None else f'{held / 2**20:.0f} MB'} | {rss0:.0f} MB | {load[0]:.1f} s ({load[1]:.1f} s) "
          f"| {rss_load:.0f} MB | {left[0]:.1f} s ({left[1]:.1f} s) | "
          f"{f'{fin[0]:.1f} s ({fin[1]:.1f} s)' if a.finish else '-'} | {_rss_mb():.0f} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
