"""status's figures kept current by the writers, so that ``pacscopy status`` answers at once.

Counting every planned instance by its final state (macro ``final_states``) reads the whole
books: minutes at tens of millions of instances. Instead the figures per target and final state
live in table ``status_counts`` (schema 0017), and every writer keeps them:

- a writer that records a batch of work (a send's journal merge, a local send's flush, verify's
  results) calls :func:`keeping` around its insert, in its own transaction: the batch's
  SOPInstanceUIDs go into table ``status_keys``, their final states are taken before and after the
  insert (``final_states_of(target, true)`` reads only their rows), and each instance moves from
  its old state's row to its new one's (old state -1, new state +1);
- a writer that changes the plan (check, decide, map, manifest load) calls :func:`recount_kept`:
  every kept target is counted again, in the writer's transaction;
- ``status_kept`` records, per target, a fingerprint of the index (``sql/ops/status/fingerprint.sql``:
  the books' table sizes and the marks writers leave). A writer that keeps the figures refreshes it;
  any write that does not (an older pacscopy, a ``duckdb`` session, a writer without the call)
  leaves it stale, and status counts again instead of showing a stale figure as current.

The kept figures equal a full count (tests/test_status_counts.py: after send, verify, a delta
check, decide and a killed send's journal merge).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import duckdb

from pacscopy.index import load_sql, run

log = logging.getLogger(__name__)


class StateCount(NamedTuple):
    """One row of ``status_counts``: instances in one final state, their planned bytes, with a warning."""

    final_state: str
    instances: int
    bytes: int
    warnings: int


Counts = dict[str, StateCount]


def fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """The index state the kept figures hold for (see ``sql/ops/status/fingerprint.sql``)."""
    row = run(con, "ops/status/fingerprint").fetchone()
    assert row is not None
    return str(row[0])


def count(con: duckdb.DuckDBPyConnection, target: str, *, keyed: bool = False) -> Counts:
    """Count the plan per final state for ``target`` (``keyed``: only the instances in ``status_keys``)."""
    cur = run(con, "ops/status/count_keyed" if keyed else "ops/status/count_states", {"target": target})
    return {r[0]: StateCount(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in cur.fetchall()}


def kept(con: duckdb.DuckDBPyConnection, target: str) -> tuple[Counts, dt.datetime] | None:
    """The kept figures for ``target`` and when they were last changed, if they hold for the index now."""
    row = con.execute("SELECT fingerprint, updated_at FROM status_kept WHERE target = $t", {"t": target}).fetchone()
    if row is None or row[0] != fingerprint(con):
        return None
    rows = con.execute("SELECT final_state, instances, bytes, warnings FROM status_counts WHERE target = $t",
                       {"t": target}).fetchall()
    return {r[0]: StateCount(*r) for r in rows if r[1]}, row[1]


def store(con: duckdb.DuckDBPyConnection, target: str, counts: Counts, fp: str) -> bool:
    """Keep ``counts`` (a full count made on the index state ``fp``) if the index is still in that state.

    Runs in a transaction of its own; returns whether the figures were kept.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        if fingerprint(con) != fp:
            con.execute("ROLLBACK")
            return False
        _replace(con, target, counts, fp, counted=True)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return True


def _replace(con: duckdb.DuckDBPyConnection, target: str, counts: Counts, fp: str, *, counted: bool) -> None:
    con.execute("DELETE FROM status_counts WHERE target = $t", {"t": target})
    rows = [c for c in counts.values() if c.instances]
    if rows:
        con.executemany("INSERT INTO status_counts VALUES ($1, $2, $3, $4, $5)",
                        [(target, *r) for r in rows])
    now = dt.datetime.now()
    if counted:
        con.execute("INSERT OR REPLACE INTO status_kept VALUES ($t, $now, $now, $fp)",
                    {"t": target, "now": now, "fp": fp})
    else:
        con.execute("UPDATE status_kept SET updated_at = $now, fingerprint = $fp WHERE target = $t",
                    {"t": target, "now": now, "fp": fp})


def _valid_targets(con: duckdb.DuckDBPyConnection, fp: str) -> list[str]:
    return [r[0] for r in con.execute("SELECT target FROM status_kept WHERE fingerprint = $fp ORDER BY 1",
                                      {"fp": fp}).fetchall()]


def recount_kept(con: duckdb.DuckDBPyConnection) -> None:
    """Count again every target whose figures are kept (for writers that change the plan; in their transaction).

    Targets whose kept figures were already stale are dropped from ``status_kept`` (the next
    status counts them); the others are counted on the index as the writer leaves it.
    """
    targets = [r[0] for r in con.execute("SELECT target FROM status_kept ORDER BY 1").fetchall()]
    if not targets:
        return
    fp = fingerprint(con)
    for t in targets:
        _replace(con, t, count(con, t), fp, counted=True)


def forget(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every kept figure (the next status counts): for writers that change the books wholesale."""
    con.execute("DELETE FROM status_kept")
    con.execute("DELETE FROM status_counts")


@contextmanager
def keeping(con: duckdb.DuckDBPyConnection, target: str | None, sops: Sequence[str]) -> Iterator[None]:
    """Around a recorded batch of work for instances ``sops``, inside the writer's transaction.

    ``target``: the batch is ``target``'s books (transfers, verifications); None: it changes
    the instances for every target (a decision). For each target whose kept figures hold, the
    batch's instances move from their states before the block to their states after it; other
    targets' kept figures stay valid (their states do not depend on ``target``'s books). Stale
    figures are left stale (status counts them again).
    """
    fp = fingerprint(con)
    valid = _valid_targets(con, fp)
    mine = [t for t in valid if target is None or t == target]
    if not valid or not sops:
        yield
        if valid:
            after_fp = fingerprint(con)
            con.execute("UPDATE status_kept SET fingerprint = $new WHERE fingerprint = $old", {"new": after_fp, "old": fp})
        return
    before: dict[str, Counts] = {}
    if mine:
        con.execute("DELETE FROM status_keys")
        con.execute("INSERT INTO status_keys SELECT DISTINCT unnest($sops::VARCHAR[])", {"sops": list(sops)})
        before = {t: count(con, t, keyed=True) for t in mine}
    yield
    after_fp = fingerprint(con)
    for t in mine:
        after = count(con, t, keyed=True)
        cur = {r[0]: StateCount(*r) for r in con.execute(
            "SELECT final_state, instances, bytes, warnings FROM status_counts WHERE target = $t", {"t": t}).fetchall()}
        for state in set(before[t]) | set(after):
            b = before[t].get(state, StateCount(state, 0, 0, 0))
            a = after.get(state, StateCount(state, 0, 0, 0))
            c = cur.get(state, StateCount(state, 0, 0, 0))
            cur[state] = StateCount(state, c.instances - b.instances + a.instances, c.bytes - b.bytes + a.bytes,
                                    c.warnings - b.warnings + a.warnings)
        _replace(con, t, cur, after_fp, counted=False)
    if mine:
        con.execute("DELETE FROM status_keys")
    for t in valid:
        if t not in mine:
            con.execute("UPDATE status_kept SET fingerprint = $fp WHERE target = $t", {"fp": after_fp, "t": t})


def load_count_sql() -> str:
    """The counting SQL (part of the status file cache's key)."""
    return load_sql("ops/status/count_states")
