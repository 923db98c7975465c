"""A rescan of N changed files written into a big index through the scan's own write path (issue 12).

    python scripts/bench_rescan.py --index PATH [--changed 100000] [--every 2] [--batch 20000] [--missing 1000]

PATH is an index from ``scripts/bench make-index`` (checked, so that the scan records the changed
rows' keys for the next incremental check, as after a first check). It is changed in place: the
next ``check`` is an incremental one over these rows (copy the index first to keep it).

No files are read: the rows a rescan would write are taken from the index (every ``--every``-th
file of a volume, volume after volume until ``--changed`` rows: a re-restored tape; or, with
``--shape sprinkled``, files spread over the whole index), with what a
changed file brings (new size, mtime and file hash, a revised StudyDescription and so another
dataset hash). Per volume, the scan of its root is replayed with pacscopy.scan.scan's functions:
``start_root`` (the scans row and the root's known files), ``_Writer.write`` per batch of
``--batch`` rows (one transaction each: the old keys recorded in check_dirty, the upsert, the new
keys; the scan writes HOP_ROWS rows or a second's worth at a time), then ``finish_root`` (the last
volume's ``--missing`` files marked missing, the scans row, the files per status). Prints the wall
and CPU seconds of each part and the process's peak RSS while it replays the scan (sampled every
20 ms; it includes the rows the benchmark selected up front, held in Python, and says how much they
take: the RSS they added before the replay began), with the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

#: The scan row (pacscopy.scan.fileread.ROW_COLUMNS) of a changed file, from its files row.
CHANGED = {
    "size": "size + 1",
    "mtime_us": "epoch_us(mtime) + 3600000000",
    "mtime_ns": "mtime_ns + 3600000000000",
    "xxh3": "md5('rescan' || xxh3)",
    "dataset_xxh3": "md5('rescan' || dataset_xxh3)",
    "study_description": "study_description || ' (revised)'",
    # the values as the scan reads them (files keeps the compact form since schema 0030)
    "path_bytes": "file_path_bytes(path, path_bytes)",
    "meta_sop_instance_uid": "meta_sop_uid(meta_sop_instance_uid, sop_instance_uid)",
    "attr_digest": "NULL::BLOB",
    "attr_keys": "NULL::BLOB",
}


class Clock:
    """Wall and CPU seconds (user + system of this process) of a stretch."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.monotonic(), self._cpu()

    @staticmethod
    def _cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.monotonic(), self._cpu()
        out = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return out


def main() -> int:
    from pacscopy.scan.fileread import ROW_COLUMNS
    from pacscopy.scan.known import Gone
    from pacscopy.scan.scan import HOP_ROWS, ScanResult, _Hop, _Writer, finish_root, start_root

    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--changed", type=int, default=100_000)
    ap.add_argument("--shape", choices=("volume", "sprinkled"), default="volume",
                    help="volume: every --every-th file of a volume, volume after volume (a re-restored tape); "
                         "sprinkled: files spread over the whole index by a hash of their path (written "
                         "under the scan of the first volume's root)")
    ap.add_argument("--every", type=int, default=2, help="every Nth file of a volume changed")
    ap.add_argument("--batch", type=int, default=HOP_ROWS, help="rows per write transaction")
    ap.add_argument("--missing", type=int, default=1000, help="files of the last volume gone")
    a = ap.parse_args()
    load = os.getloadavg()
    clock = Clock()
    hop = _Hop(str(a.index))
    con = hop.connect()
    assert con is not None
    t_open = clock.lap()
    from bench_index import _tree_rss

    rss_open = _tree_rss(os.getpid())
    files = con.execute("SELECT count(*) FROM files").fetchone()
    recording = con.execute("SELECT count(*) FROM check_state WHERE NOT full_needed").fetchone()
    volumes = [r[0] for r in con.execute("SELECT DISTINCT root FROM files ORDER BY 1").fetchall()]
    select = ", ".join(CHANGED.get(c, c) for c in ROW_COLUMNS) + ", rowid"  # the row id last: the scan's Known gives it
    con.execute("SET memory_limit = '2GB'")  # the selection is the benchmark's, not the scan's
    plan: list[tuple[str, list[tuple], list[str]]] = []  # per root: changed rows, gone paths
    left = a.changed
    if a.shape == "sprinkled":
        step = max(1, (files[0] if files else 0) // a.changed)
        rows = con.execute(f"SELECT {select} FROM files WHERE status = 'ok' AND hash(path) % $step = 0 "
                           "ORDER BY path LIMIT $n", {"step": step, "n": a.changed}).fetchall()
        plan.append((volumes[0], rows, []))
        volumes = []
    for root in volumes:
        if left <= 0:
            break
        # the benchmark's own SQL (column expressions above), values as parameters
        rows = con.execute(
            f"SELECT {select} FROM (SELECT *, rowid AS rowid, row_number() OVER (ORDER BY path) AS n FROM files "
            f"WHERE root = $root AND status = 'ok') WHERE n % $every = 0 ORDER BY path LIMIT $n",
            {"root": root, "every": a.every, "n": left}).fetchall()
        left -= len(rows)
        plan.append((root, rows, []))
    root, rows, _ = plan[-1]
    gone = [(r[0], r[1]) for r in con.execute(
        "SELECT path, rowid FROM files WHERE root = $root AND status = 'ok' AND path NOT IN (SELECT unnest($changed)) "
        "ORDER BY path DESC LIMIT $n", {"root": root, "changed": [r[0] for r in rows], "n": a.missing}).fetchall()]
    plan[-1] = (root, rows, gone)
    # the scan starts on an index opened afresh, as a scan process does: nothing of the selection's
    # (at 500,000 rows its buffers left a scan's first keeping move out of memory) stays in DuckDB
    con.close()
    con = hop.connect()
    assert con is not None
    t_select = clock.lap()
    held = max(0, _tree_rss(os.getpid()) - rss_open)  # the rows the benchmark selected, held in Python
    changed = sum(len(p[1]) for p in plan)
    print(f"{files[0] if files else 0:,} files; {changed:,} changed in {len(plan)} volume(s), {len(gone):,} gone; "
          f"recording for the incremental check: {bool(recording and recording[0])}; "
          f"rows selected in {t_select[0]:.1f} s", file=sys.stderr)
    import threading

    peak_rss, done = 0, threading.Event()

    def sample() -> None:  # the scan's own RSS from here on (the selection above is the benchmark's)
        nonlocal peak_rss
        while not done.is_set():
            peak_rss = max(peak_rss, _tree_rss(os.getpid()))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    starts, writes, finishes = [], [], []
    for root, rows, gone in plan:
        clock.lap()
        scan_id, known = start_root(con, root, os.path.basename(root))
        starts.append(clock.lap())
        res = ScanResult(root, os.path.basename(root), scan_id, changed=len(rows), unchanged=len(known) - len(rows),
                         missing=len(gone))
        writer = _Writer(hop, scan_id, res.volume, root, con)
        writer.upserts = {r[0]: r[-1] for r in rows}
        gone_files = Gone.of_paths([g[1] for g in gone], [g[0] for g in gone])
        for i in range(0, len(rows), a.batch):
            writer.rows = [r[:-1] for r in rows[i:i + a.batch]]
            n = len(writer.rows)
            writer.write(con)
            writes.append(clock.lap())
            print(f"  {root}: batch of {n:,} rows: "
                  f"{writes[-1][0]:.2f} s ({writes[-1][1]:.2f} s CPU)", file=sys.stderr)
        writer.commit()  # as scan_root does: the transaction kept open over batches (figures kept)
        finish_root(con, res, gone_files, time.monotonic())
        finishes.append(clock.lap())
        del known
    clock.lap()
    con.close()
    t_close = clock.lap()
    done.set()
    peak = peak_rss

    def total(xs: list[tuple[float, float]]) -> str:
        return f"{sum(x[0] for x in xs):.1f} s ({sum(x[1] for x in xs):.1f} s CPU)"

    write_wall = sum(w[0] for w in writes)
    print(f"| rows in files | changed | gone | batch | open | start of each root (known files) | writes | "
          f"median batch | finish (missing, counts) | close (checkpoint) | rescan total | peak RSS (rescan; the rows selected included) | "
          f"of it the rows selected | load (1/5/15 min) |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    every = starts + writes + finishes + [t_close]
    print(f"| {files[0] if files else 0:,} | {changed:,} | {len(plan[-1][2]):,} | {a.batch:,} | {t_open[0]:.1f} s | "
          f"{total(starts)} | {total(writes)} | {statistics.median(w[0] for w in writes):.2f} s | {total(finishes)} | "
          f"{t_close[0]:.1f} s | {total(every)} | {peak / 2**20:.0f} MB | {held / 2**20:.0f} MB | "
          f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} |")
    print(f"\n{changed / write_wall:,.0f} changed rows written per second (writes alone).", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
