"""Synthetic indexes at hospital scale, built by SQL only (``scripts/bench make-index``, tests).

The shapes follow issue 12: UIDs of ~55 characters under a few device roots, paths of ~92
characters, 1 % duplicates (0.1 % of the rows conflicting), 0.1 % corrupt, 50 instances per
series, 3 series per study, study dates over 20 years, 250,000 files per volume, and a send
run with transfers and verifications (``sql/testing/scale_*.sql``).
"""

from __future__ import annotations

import duckdb

from pacscopy.index import applied_versions, load_sql, run_statements

#: The target the synthetic transfers and verifications name.
TARGET = "NEWPACS@127.0.0.1:11112"


#: Rows written per transaction: before schema 0033, the path primary key's index of the rows a
#: transaction inserted stayed in memory until it committed (one 50 M-row transaction did not fit
#: 2 GB); an index made with an older schema (tests of migrations) still has it.
CHUNK_ROWS = 5_000_000


def fill(con: duckdb.DuckDBPyConnection, rows: int, *, sent: float = 0.6, verified: float = 0.4,
         target: str = TARGET, chunk: int = CHUNK_ROWS) -> None:
    """Fill an empty, migrated index with ``rows`` files, a scan, transfers and verifications, in
    transactions of ``chunk`` files (with their transfers and verifications), each checkpointed.
    The rows are as the scan writes them for the index's schema (before 0030, or compact since; with
    their instance keys since 0031; the run's totals since 0034)."""
    versions = applied_versions(con)
    compact, keyed = 30 in versions, 31 in versions
    for start in range(0, rows, chunk):
        params = {"rows": rows, "start": start, "stop": min(rows, start + chunk), "target": target,
                  "sent": sent, "verified": verified, "compact": compact}
        con.execute("BEGIN TRANSACTION")
        try:
            row = con.execute("SELECT coalesce(max(transfer_id), 0) FROM transfers").fetchone()
            params["transfers_before"] = row[0] if row else 0
            _script(con, "testing/scale_files", params, keyed)
            _script(con, "testing/scale_sent", params, keyed)
            if 34 in versions:
                _script(con, "testing/scale_run_totals", params, keyed)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("CHECKPOINT")


def _script(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, object], keyed: bool) -> None:
    """Run a fill script; on an index before schema 0031 without its lines marked ``-- schema 0031``
    (the instances' keys, a column such an index does not have)."""
    sql = load_sql(name)
    if not keyed:
        sql = "\n".join(line for line in sql.splitlines() if not line.rstrip().endswith("-- schema 0031"))
    run_statements(con, sql, params)
