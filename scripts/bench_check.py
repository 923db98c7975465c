"""Benchmark `pacscopy check` on a synthetic index of N `files` rows generated directly in DuckDB.

No files on disk: rows are generated with SQL, with realistic rates of duplicates
(identical, re-encoded, conflicting), corrupt files and ID conflicts. The
re-encoded and conflicting duplicates have no file to read, so their content
hashes record "cannot read" and they count as conflicts: the Python step is
still exercised for every such file.

usage: python scripts/bench_check.py [--rows 5000000] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pacscopy.index import migrate  # noqa: E402

GENERATE = """
INSERT INTO files BY NAME
WITH base AS (
    SELECT i,
           -- 1% identical copies, 0.2% re-encoded copies, 0.05% conflicting copies of instance i-1
           CASE WHEN i % 100 = 1 OR i % 500 = 3 OR i % 2000 = 5 THEN i - 1 ELSE i END AS inst,
           CASE WHEN i % 500 = 3 THEN 're' WHEN i % 2000 = 5 THEN 'cf' ELSE '' END AS variant
    FROM range($rows) t(i)
)
SELECT
    '/bench/vol' || (i % 40) || '/' || (inst // 1000) || '/IM' || i || '.dcm' AS path,
    NULL AS path_bytes,   -- a UTF-8 name (schema 0030)
    'vol' || (i % 40) AS volume,
    '/bench' AS root,
    500000 + (inst % 1000) AS size,
    TIMESTAMP '2024-01-01' + to_seconds(i) AS mtime,
    i AS mtime_ns,
    md5('f' || i) AS xxh3,
    md5('d' || inst || variant) AS dataset_xxh3,
    CASE WHEN i % 200 = 7 THEN 'corrupt' WHEN i % 5000 = 11 THEN 'suspect' ELSE 'ok' END AS status,
    CASE WHEN i % 200 = 7 THEN 'truncated' WHEN i % 5000 = 11 THEN 'zero_block' END AS reason,
    true AS has_meta,
    330 AS dataset_offset,
    CASE WHEN inst % 7 = 0 THEN '1.2.840.10008.1.2' ELSE '1.2.840.10008.1.2.1' END AS transfer_syntax_uid,
    '1.2.840.10008.5.1.4.1.1.2' AS meta_sop_class_uid,
    NULL AS meta_sop_instance_uid,   -- equal to sop_instance_uid (schema 0030)
    '1.2.826.0.1.3680043.8.498.9.' || inst AS sop_instance_uid,
    CASE WHEN inst % 997 = 0 THEN '1.2.840.113619.4.27' ELSE '1.2.840.10008.5.1.4.1.1.2' END AS sop_class_uid,
    -- 10 instances per series, 2 series per study; 0.1% of series reuse another study's UID
    '1.2.826.0.1.3680043.8.498.8.' || (inst // 20) AS study_instance_uid,
    '1.2.826.0.1.3680043.8.498.7.' || (CASE WHEN (inst // 10) % 1000 = 999 THEN (inst // 10) - 2 ELSE inst // 10 END) AS series_instance_uid,
    'PID' || (inst // 200) AS patient_id,
    'DOE^PATIENT' || (inst // 200) || CASE WHEN inst % 100000 = 17 THEN 'X' ELSE '' END AS patient_name,
    '19' || lpad(((inst // 200) % 90 + 10)::VARCHAR, 2, '0') || '0101' AS patient_birth_date,
    'O' AS patient_sex,
    'ACC' || CASE WHEN (inst // 20) % 1000 = 500 THEN (inst // 20) - 300 ELSE inst // 20 END AS accession_number,
    (2000 + (inst // 20) % 25)::VARCHAR || '0101' AS study_date,
    'CT study' AS study_description,
    'CT' AS modality,
    1 AS series_number,
    (inst % 10) + 1 AS instance_number,
    512 AS rows, 512 AS columns,
    1000 AS pixel_data_offset, 524288 AS pixel_data_length, false AS encapsulated,
    now()::TIMESTAMP AS first_seen, now()::TIMESTAMP AS scanned_at, 1 AS scan_id,
    sop_hash_of(sop_instance_uid) AS sop_hash   -- the instance's key (schema 0031)
FROM base;
"""


def build(path: Path, rows: int) -> float:
    t = time.monotonic()
    con = duckdb.connect(str(path))
    migrate(con)
    con.execute(GENERATE, {"rows": rows})
    con.execute("CHECKPOINT")
    con.close()
    return time.monotonic() - t


def run_check(path: Path) -> tuple[float, int]:
    cmd = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "pacscopy", "check", "--index", str(path), "-q"]
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.monotonic() - t
    if r.returncode != 0:
        raise SystemExit(f"check failed: {r.stderr[-2000:]}")
    rss_kb = int(r.stderr.strip().splitlines()[-1])  # peak RSS of the main process (workers are smaller)
    return wall, rss_kb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path)
    a = ap.parse_args()
    d = a.keep or Path(tempfile.mkdtemp(prefix="pacscopy-bench-check-"))
    d.mkdir(parents=True, exist_ok=True)
    src = d / f"check-{a.rows}.duckdb"
    if not src.exists():
        print(f"generating {a.rows:,} rows ...", file=sys.stderr)
        print(f"generated in {build(src, a.rows):.1f} s", file=sys.stderr)
    walls, rss = [], []
    for n in range(a.runs):
        work = d / "run.duckdb"
        subprocess.run(["cp", str(src), str(work)], check=True)
        if os.path.exists(str(src) + ".wal"):
            subprocess.run(["cp", str(src) + ".wal", str(work) + ".wal"], check=True)
        w, r = run_check(work)
        walls.append(w)
        rss.append(r)
        print(f"run {n + 1}: {w:.1f} s, peak RSS {r / 1024:.0f} MB", file=sys.stderr)
    con = duckdb.connect(str(d / "run.duckdb"), read_only=True)
    findings = con.execute("SELECT check_id, count(*) FROM findings GROUP BY 1 ORDER BY 1").fetchall()
    plan = con.execute("SELECT disposition, count(*) FROM plan GROUP BY 1 ORDER BY 2 DESC").fetchall()
    con.close()
    print(f"| rows | runs | median wall | max peak RSS (main process) |\n|---|---|---|---|\n"
          f"| {a.rows:,} | {a.runs} | {statistics.median(walls):.1f} s | {max(rss) / 1024:.0f} MB |")
    print("\nfindings: " + ", ".join(f"{c} {n:,}" for c, n in findings))
    print("plan: " + ", ".join(f"{c} {n:,}" for c, n in plan))


if __name__ == "__main__":
    main()
