"""A synthetic index of N `files` rows built by SQL, with the shapes of a hospital archive (issue 12).

    python scripts/bench_index.py make-index --rows N --index PATH [--sent 0.6] [--verified 0.4]
    python scripts/bench_index.py measure --index PATH [--only check,check-full,status,report,reconcile] [--runs 1]
    python scripts/bench_index.py merge-cost --index PATH [--batch 2000] [--runs 3]
    python scripts/bench_index.py bytes --index PATH [--columns files,transfers]

make-index opens PATH through pacscopy's index module (so every migration applies) and
fills it with SQL only (pacscopy.testing.scale, sql/testing/scale_*.sql; no files on disk):

- UIDs of ~55 characters under a handful of device roots, paths of ~92 characters;
- 50 instances per series, 3 series per study, 3 studies per patient, study dates over 20 years;
- 250,000 files per volume (volume = a restored tape);
- 1 % of the rows are duplicates of another row's instance (identical dataset), and 0.1 % of
  the rows are conflicting copies (other dataset bytes: check hashes their content, finds no
  file and counts them as conflicts), 0.1 % corrupt (truncated);
- a send run to NEWPACS@127.0.0.1:11112 recording `--sent` of the instances stored and
  `--verified` of them verified by C-FIND (run `check` first for a plan: the transfers only
  reference SOPInstanceUIDs, as a real send would).

measure runs pacscopy commands on the index (or a copy) and prints wall time, CPU seconds and the
peak RSS of the whole process tree (sampled from /proc every 20 ms), with the load average;
``--timeout S`` stops a command after S seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = "NEWPACS@127.0.0.1:11112"  # pacscopy.testing.scale.TARGET

def make_index(path: Path, rows: int, sent: float, verified: float) -> None:
    from pacscopy.index import open_index
    from pacscopy.testing.scale import fill

    if path.exists():
        raise SystemExit(f"{path} exists: give a new path")
    t = time.monotonic()
    con = open_index(str(path), create=True, memory_limit=os.environ.get("PACSCOPY_MEMORY_LIMIT", "2GB"))
    fill(con, rows, sent=sent, verified=verified)
    con.execute("CHECKPOINT")
    stats = con.execute("""
        SELECT count(*), avg(length(path)), avg(length(sop_instance_uid)), avg(length(study_instance_uid)),
               count(DISTINCT volume), count(*) FILTER (WHERE status = 'corrupt'),
               (SELECT count(*) FROM transfers), (SELECT count(*) FROM verifications)
        FROM files""").fetchone()
    con.close()
    assert stats is not None
    print(f"{stats[0]:,} files in {stats[4]} volumes, path {stats[1]:.0f} chars, SOPInstanceUID {stats[2]:.0f}, "
          f"StudyInstanceUID {stats[3]:.0f}, {stats[5]:,} corrupt, {stats[6]:,} transfers, "
          f"{stats[7]:,} verifications; {time.monotonic() - t:.1f} s, "
          f"{path.stat().st_size / 1e9:.2f} GB", file=sys.stderr)


def _tree_rss(pid: int) -> int:
    """RSS in bytes of pid and all its descendants."""
    page = os.sysconf("SC_PAGE_SIZE")
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, ValueError):
            pass
        todo.extend(kids.get(p, []))
    return total


def timed(cmd: list[str], env: dict[str, str] | None = None,
          timeout: float | None = None) -> tuple[float, int, int, str, float]:
    """Wall seconds, peak RSS of the process tree (bytes), exit code, the stderr tail and the CPU
    seconds (user + system) of the process and the children it waited for. Past ``timeout`` the
    process is stopped (SIGTERM, then SIGKILL) and the exit code is None's stand-in -9."""
    import resource
    import signal

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        _, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        rc = -9
        err = f"stopped after {timeout:.0f} s\n{err or ''}"
    wall = time.monotonic() - t
    done.set()
    th.join()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, peak, rc, (err or "").strip()[-300:], cpu


COMMANDS = {
    "check": ["check", "-q"],
    "check-full": ["check", "-q", "--full"],
    "status": ["status", "--target", TARGET],
    "report": ["report", "--format", "json"],
    "reconcile": ["reconcile", "--target", TARGET, "--no-query", "--format", "json"],
}


def measure(path: Path, only: list[str], runs: int, timeout: float | None = None) -> None:
    rows = []
    for name in only:
        for n in range(runs):
            load = os.getloadavg()[0]
            cmd = [sys.executable, "-m", "pacscopy", *COMMANDS[name], "--index", str(path)]
            wall, peak, rc, err, cpu = timed(cmd, timeout=timeout)
            if rc == -9:
                note = f"did not finish: stopped after {timeout:.0f} s"
            else:
                note = f"exit {rc}" + (f": {err.splitlines()[-1]}" if rc not in (0, 1) and err else "")
            rows.append((name, wall, cpu, peak, load, note))
            print(f"{name} run {n + 1}: {wall:.1f} s ({cpu:.1f} s CPU), peak RSS {peak / 2**20:.0f} MB, "
                  f"load {load:.1f} {note}", file=sys.stderr)
    print("| command | wall | CPU (user + system) | peak RSS (tree) | load avg (1 min) at start | note |\n"
          "|---|--:|--:|--:|--:|---|")
    for name, wall, cpu, peak, load, note in rows:
        print(f"| {name} | {wall:.1f} s | {cpu:.1f} s | {peak / 2**20:.0f} MB | {load:.1f} | {note} |")


def index_bytes(path: Path, columns: list[str]) -> None:
    """Bytes on disk per table of the index at ``path`` (opened read-only, as it is: checkpoint it
    first), per million ``files`` rows, from DuckDB's ``pragma_storage_info``: the distinct blocks a
    table's segments live in (a block shared by several tables, if any, counts for each). With
    ``columns``, those tables' columns too: a segment's bytes are the distance to the next segment
    in its block (or to the block's end), plus its whole additional blocks (long strings)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        size = con.execute("SELECT block_size, used_blocks, total_blocks FROM pragma_database_size()").fetchone()
        assert size is not None
        block, used, total = size
        nfiles = con.execute("SELECT count(*) FROM files").fetchone()[0]  # type: ignore[index]
        per_m = 1e6 / max(1, nfiles)
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1").fetchall()]
        out, in_tables = [], set()
        for t in tables:
            segs = con.execute(
                "SELECT column_name, block_id, block_offset, additional_block_ids "
                f"FROM pragma_storage_info('{t}') WHERE persistent AND block_id >= 0").fetchall()
            blocks = {b for _, b, _, _ in segs} | {x for *_, extra in segs for x in extra or []}
            in_tables |= blocks
            rows = con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # type: ignore[index]
            out.append((t, rows, len(blocks) * block))
            if t in columns:
                starts: dict[int, list[int]] = {}
                for _, b, off, _ in segs:
                    starts.setdefault(b, []).append(off)
                for v in starts.values():
                    v.sort()
                cols: dict[str, int] = {}
                for col, b, off, extra in segs:
                    v = starts[b]
                    nxt = next((o for o in v if o > off), block)
                    cols[col] = cols.get(col, 0) + (nxt - off) + len(extra or []) * block
                for col, n in sorted(cols.items(), key=lambda kv: -kv[1]):
                    print(f"  {t}.{col}: {n / 1e6:.1f} MB, {n * per_m / 1e6:.1f} MB per million files",
                          file=sys.stderr)
    finally:
        con.close()
    print(f"| table | rows | size | per million files |\n|---|--:|--:|--:|")
    for t, rows, n in sorted(out, key=lambda r: -r[2]):
        if n:
            print(f"| {t} | {rows:,} | {n / 1e6:.1f} MB | {n * per_m / 1e6:.1f} MB |")
    rest = (used - len(in_tables)) * block
    print(f"| primary-key indexes (ART) and other used blocks | | {rest / 1e6:.1f} MB | {rest * per_m / 1e6:.1f} MB |")
    print(f"| **used blocks** ({nfiles:,} files) | | **{used * block / 1e6:.1f} MB** | "
          f"**{used * block * per_m / 1e6:.1f} MB** |")
    print(f"| the index file ({total - used} free blocks) | | {path.stat().st_size / 1e6:.1f} MB | "
          f"{path.stat().st_size * per_m / 1e6:.1f} MB |")


def merge_cost(path: Path, batch: int, runs: int) -> None:
    """What keeping status's figures costs a journal merge: a batch of ``batch`` stored attempts
    inserted with and without :func:`pacscopy.send.status_counts.keeping`, each rolled back (the
    index is left as it was); medians of ``runs``. The target's figures are counted first if not kept."""
    import statistics

    from pacscopy.index import open_index
    from pacscopy.send import status_counts

    con = open_index(str(path))
    try:
        if status_counts.kept(con, TARGET) is None:
            t = time.monotonic()
            status_counts.store(con, TARGET, status_counts.count(con, TARGET), status_counts.fingerprint(con))
            print(f"counted and kept the figures: {time.monotonic() - t:.1f} s", file=sys.stderr)
        sops = [r[0] for r in con.execute(
            "SELECT sop_instance_uid FROM plan_auto WHERE disposition = 'send' ORDER BY hash(sop_instance_uid) LIMIT $n",
            {"n": batch * runs * 2}).fetchall()]
        insert = ("INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, outcome) "
                  "SELECT 999999, $t, p.sop_instance_uid, p.path, now(), now(), 'stored' FROM plan_auto p "
                  "WHERE p.sop_instance_uid IN (SELECT unnest($sops::VARCHAR[]))")
        times: dict[bool, list[float]] = {False: [], True: []}
        for i in range(runs * 2):
            keep = i % 2 == 1
            chunk = sops[i * batch:(i + 1) * batch]
            con.execute("BEGIN TRANSACTION")
            t = time.monotonic()
            if keep:
                with status_counts.keeping(con, TARGET, chunk):
                    con.execute(insert, {"t": TARGET, "sops": chunk})
            else:
                con.execute(insert, {"t": TARGET, "sops": chunk})
            times[keep].append(time.monotonic() - t)
            con.execute("ROLLBACK")
        t = time.monotonic()
        status_counts.kept(con, TARGET)
        read = time.monotonic() - t
        rows = con.execute("SELECT count(*) FROM files").fetchone()
    finally:
        con.close()
    load = os.getloadavg()[0]
    print(f"| rows in files | batch | insert alone (median) | insert + keeping the figures (median) | reading the kept figures | load |")
    print("|--:|--:|--:|--:|--:|--:|")
    print(f"| {rows[0] if rows else 0:,} | {batch:,} | {statistics.median(times[False]) * 1000:.0f} ms | "
          f"{statistics.median(times[True]) * 1000:.0f} ms | {read * 1000:.0f} ms | {load:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make-index")
    mk.add_argument("--rows", type=int, required=True)
    mk.add_argument("--index", type=Path, required=True)
    mk.add_argument("--sent", type=float, default=0.6, help="share of instances stored on the target")
    mk.add_argument("--verified", type=float, default=0.4, help="share of stored instances verified")
    me = sub.add_parser("measure")
    me.add_argument("--index", type=Path, required=True)
    me.add_argument("--only", default="check,status,report,reconcile")
    me.add_argument("--runs", type=int, default=1)
    me.add_argument("--copy", action="store_true", help="measure on a copy (check rewrites the plan)")
    me.add_argument("--timeout", type=float, help="stop a command after this many seconds (reported as such)")
    mc = sub.add_parser("merge-cost")
    mc.add_argument("--index", type=Path, required=True)
    mc.add_argument("--batch", type=int, default=2000)
    mc.add_argument("--runs", type=int, default=3)
    by = sub.add_parser("bytes")
    by.add_argument("--index", type=Path, required=True)
    by.add_argument("--columns", default="", help="tables whose columns to show (comma-separated)")
    a = ap.parse_args()
    if a.cmd == "bytes":
        index_bytes(a.index, [c for c in a.columns.split(",") if c])
    elif a.cmd == "make-index":
        make_index(a.index, a.rows, a.sent, a.verified)
    elif a.cmd == "merge-cost":
        merge_cost(a.index, a.batch, a.runs)
    else:
        path = a.index
        if a.copy:
            path = a.index.with_suffix(".run.duckdb")
            shutil.copy(a.index, path)
        measure(path, a.only.split(","), a.runs, a.timeout)


if __name__ == "__main__":
    main()
