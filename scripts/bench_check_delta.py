"""Full check vs incremental check after a change, on an index built by SQL (issue 12 item 2).

    python scripts/bench_check_delta.py --index BASE.duckdb [--changed 0.01] [--shape sprinkled|clustered|both]

BASE is an index from ``scripts/bench make-index`` (not modified: each measurement runs on a copy).
Per shape: ``check --full`` on the copy (the reference, and what every check cost before check was
incremental), then 1 % of the rows changed by SQL as a rescan writes them (their keys recorded in
check_dirty before and after, a revised StudyDescription: no finding changes), then ``check`` (the
incremental one) and ``check --full`` again; findings and plan of the incremental check and of the
full one after it are compared (hashes of every row). Shapes: ``sprinkled`` changes every 100th
row (every study and patient of the archive is touched), ``clustered`` all the rows of 1 % of the
patients (a patient update, an import: what a delta scan usually brings). Wall time and peak RSS of
the process tree, with the load average.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_index import timed  # noqa: E402

SHAPES = {
    # every 100th row by a hash of its path
    "sprinkled": "hash(path) % $step = 0",
    # every row of every 100th patient
    "clustered": "hash(patient_id) % $step = 0",
}
DIGEST = ("SELECT (SELECT count(*) || ':' || coalesce(bit_xor(hash(check_id, severity, path, sop_instance_uid, "
          "group_key, detail, recoverable)), 0) FROM findings), "
          "(SELECT count(*) || ':' || coalesce(bit_xor(hash(p)), 0) FROM plan_auto p)")


def change(path: Path, where: str, step: int) -> int:
    """Change the rows ``where`` names as a rescan would: keys recorded before and after."""
    import duckdb

    con = duckdb.connect(str(path))
    try:
        con.execute("BEGIN")
        keys = ("path, sop_instance_uid, study_instance_uid, series_instance_uid, accession_number, patient_id")
        # SQL of this benchmark, not user input: the WHERE clause is one of SHAPES
        con.execute(f"INSERT INTO check_dirty SELECT {keys}, -1 FROM files WHERE {where}", {"step": step})
        n = con.execute(f"UPDATE files SET study_description = 'REVISED', scanned_at = now()::TIMESTAMP "
                        f"WHERE {where}", {"step": step}).fetchone()
        con.execute(f"INSERT INTO check_dirty SELECT {keys}, -1 FROM files WHERE {where}", {"step": step})
        con.execute("COMMIT")
        return int(n[0]) if n else 0
    finally:
        con.close()


def digest(path: Path) -> tuple[str, str]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute(DIGEST).fetchone()
        assert row is not None
        return row[0], row[1]
    finally:
        con.close()


def run(path: Path, *args: str) -> tuple[float, int, str, float]:
    """Wall seconds, peak RSS, load average at the start, CPU seconds (user + system) of the check."""
    load = os.getloadavg()[0]
    wall, peak, rc, err, cpu = timed([sys.executable, "-m", "pacscopy", "check", "--index", str(path), *args])
    if rc not in (0, 1):
        raise SystemExit(f"bench: check {' '.join(args)} failed ({rc}): {err}")
    print(f"  check {' '.join(args)}: {wall:.1f} s ({cpu:.1f} s CPU), peak RSS {peak / 2**20:.0f} MB, load {load:.1f}",
          file=sys.stderr)
    return wall, peak, f"{load:.1f}", cpu


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--shape", choices=[*SHAPES, "both"], default="both")
    ap.add_argument("--work", type=Path, help="folder for the copies (default: a temporary one)")
    a = ap.parse_args()
    step = max(1, round(1 / a.changed))
    work = Path(tempfile.mkdtemp(prefix="pacscopy-bench-check-delta-", dir=a.work))
    rows = []
    try:
        for shape in (SHAPES if a.shape == "both" else [a.shape]):
            copy = work / f"{shape}.duckdb"
            shutil.copy(a.index, copy)
            print(f"{shape}: check --full on a copy of {a.index}", file=sys.stderr)
            full1 = run(copy, "--full", "-q")
            n = change(copy, SHAPES[shape], step)
            print(f"{shape}: {n:,} rows changed", file=sys.stderr)
            delta = run(copy, "-q")
            d1 = digest(copy)
            import duckdb

            con = duckdb.connect(str(copy), read_only=True)
            state = con.execute("SELECT mode, changed, scope_files, replanned FROM check_state").fetchone()
            files = con.execute("SELECT count(*) FROM files").fetchone()
            con.close()
            assert state is not None and files is not None and state[0] == "delta", state
            full2 = run(copy, "--full", "-q")
            d2 = digest(copy)
            assert d1 == d2, f"incremental check differs from the full one: {d1} vs {d2}"
            rows.append((shape, files[0], n, state, full1, delta, full2))
            copy.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| shape | files | changed | re-evaluated files | re-planned | check --full: wall (CPU), peak RSS, load "
          "| check after the change | check --full after it | incremental / full, wall | CPU |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")

    def cell(m: tuple[float, int, str, float]) -> str:
        return f"{m[0]:.1f} s ({m[3]:.1f} s), {m[1] / 2**20:.0f} MB, load {m[2]}"

    for shape, files, n, state, full1, delta, full2 in rows:
        print(f"| {shape} | {files:,} | {n:,} | {state[2]:,} | {state[3]:,} | {cell(full1)} | {cell(delta)} "
              f"| {cell(full2)} | {delta[0] / full2[0]:.1%} | {delta[3] / full2[3]:.1%} |")
    print("\nIncremental and full results equal (findings and plan_auto, hashed row by row).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
