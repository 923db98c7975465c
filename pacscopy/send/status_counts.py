"""status's figures kept current by the writers, so that ``pacscopy status`` answers at once.

Counting every planned instance by its final state (macro ``final_states``) reads the whole
books: minutes at tens of millions of instances. Instead the figures per target and final state
live in table ``status_counts`` (schema 0017), and every writer keeps them:

- every planned instance's state per kept target is in table ``status_instances`` (schema 0020,
  keyed by a 128-bit hash of the SOPInstanceUID), and ``status_counts`` holds their sums;
- a writer that records a batch of work (a send's journal merge, a local send's flush, verify's
  results, a decision) calls :func:`keeping` around its insert, in its own transaction: after the
  insert the batch's instances are evaluated once (``final_states`` over slices of the books holding
  only their rows), their old states are taken out of ``status_instances`` by key and the new ones
  put in, and the summary moves by the difference;
- a full check, which rebuilds the plan, moves the instances whose plan row changed
  (:func:`replanning`: each plan row's digest, the old plan's against the new); an incremental check moves the
  instances it re-planned (:func:`keeping_if_kept`);
- a writer that changes what every instance's state means (a PatientID map) calls
  :func:`recount_kept`: every kept target is counted again, in the writer's transaction;
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import duckdb

from pacscopy.index import applied_versions, fetch, load_sql, run, run_script

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


def count(con: duckdb.DuckDBPyConnection, target: str, *, keyed: bool = False,
          on_total: Callable[[int], None] | None = None, on_progress: Callable[[int], None] | None = None) -> Counts:
    """Count the plan per final state for ``target`` (``keyed``: only the instances in ``status_keys``;
    else the whole plan, slice by slice: :func:`in_slices`, which tells ``on_total`` and ``on_progress``)."""
    if keyed:
        cur = run(con, "ops/status/count_keyed", {"target": target})
        return {r[0]: StateCount(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in cur.fetchall()}
    out: Counts = {}

    def one() -> None:
        for r in run(con, "ops/status/count_states", {"target": target}).fetchall():
            c = out.get(r[0], StateCount(str(r[0]), 0, 0, 0))
            out[r[0]] = StateCount(c.final_state, c.instances + int(r[1]), c.bytes + int(r[2]), c.warnings + int(r[3]))

    in_slices(con, one, on_total=on_total, on_progress=on_progress)
    return dict(sorted(out.items()))


# -- the whole plan in slices (bounded memory and temporary disk) --------------------------------

#: Planned instances per slice of a full evaluation, per MiB of DuckDB's memory limit (750: 715,000 at the
#: default 1 GB). At 5 M files in one pass the evaluation spilled 3.8 GB at its peak (11 GB written in all);
#: in 5 slices 1.9 GB, in 7 0.3 GB, in 11 0.2 GB, for the same CPU time in 5 or 7 and ~35 % more in 11
#: (each slice reads every book's UID column): BENCHMARKS.md, "Bounded temporary disk".
SLICE_INSTANCES_PER_MIB = 750

#: A plan at most this many slices' worth is evaluated in one pass: at 1 M files (989,000 instances,
#: 1.4 slices at 1 GB) one pass spilled only 0.1 GB, and a second slice cost ~1.6 CPU-s (+28 %).
ONE_PASS_UP_TO = 1.4

#: The schema whose books take a slice (0029: macro in_slice); an older index is evaluated in one pass.
SLICED_SCHEMA = 29

#: The schema with each instance's 8-byte key in the big tables (0031: column sop_hash), which a
#: batch's slices select by; an older index (opened read-only, not migrated) is read by UID.
KEYED_SCHEMA = 31


def _applied(con: duckdb.DuckDBPyConnection, version: int) -> bool:
    return version in applied_versions(con)


def slice_instances(con: duckdb.DuckDBPyConnection) -> int:
    """The planned instances one slice of a full evaluation holds on ``con`` (its memory limit)."""
    from pacscopy.index import memory_mib

    return max(int(memory_mib(con) * SLICE_INSTANCES_PER_MIB), 10_000)


def slice_count(con: duckdb.DuckDBPyConnection) -> int:
    """How many slices a full evaluation of the books takes on ``con``: the plan's size over what
    fits in DuckDB's memory limit (:data:`SLICE_INSTANCES_PER_MIB`); 1 on an index without
    :data:`SLICED_SCHEMA` (opened read-only or lean, not migrated: its macros know no slice)."""
    if not _applied(con, SLICED_SCHEMA):
        # an index not migrated yet (read-only or lean opens do not migrate): its books ignore the slice
        return 1
    row = con.execute("SELECT count(*) FROM plan_auto").fetchone()
    planned = int(row[0]) if row else 0
    per = slice_instances(con)
    if planned <= per * ONE_PASS_UP_TO:
        return 1
    return -(-planned // per)


def in_slices(con: duckdb.DuckDBPyConnection, work: Callable[[], object], *,
              on_total: Callable[[int], None] | None = None, on_progress: Callable[[int], None] | None = None) -> None:
    """Run ``work`` (which evaluates ``final_states``/``books`` over the whole plan and appends what it
    finds) once per slice of the planned instances (:func:`slice_count`; schema 0029's ``in_slice``):
    inside ``work`` the books macros give the rows of the slice's instances only, exactly the rows a
    whole evaluation gives them. The slice variables are reset after, whatever happens (and by every
    other evaluation: :func:`_whole`). ``on_total`` is told the number of slices before the first,
    ``on_progress`` 1 after each (at 50 M files 70 slices of ~13 s: a count's progress)."""
    n = slice_count(con)
    if on_total:
        on_total(n)
    _whole(con)
    if n == 1:
        work()
        if on_progress:
            on_progress(1)
        return
    manifest = con.execute("SELECT EXISTS (SELECT 1 FROM manifest)").fetchone()
    try:
        if manifest and manifest[0]:
            # the manifest's comparison reads every file: once for every slice (the view's rows, kept
            # in a temporary table of the same name, which the books read instead while it exists)
            con.execute("CREATE OR REPLACE TEMP TABLE manifest_compare AS SELECT * FROM manifest_compare")
        con.execute("SET VARIABLE pacscopy_slices = $n", {"n": n})
        for i in range(n):
            con.execute("SET VARIABLE pacscopy_slice = $i", {"i": i})
            work()
            if on_progress:
                on_progress(1)
    finally:
        _whole(con, quiet=True)


def _whole(con: duckdb.DuckDBPyConnection, *, quiet: bool = False) -> None:
    """No slice set: the books give every instance (and the manifest comparison is the view again).
    ``quiet``: after an error (a failed statement aborts the transaction until it is rolled back, and
    this with it: :func:`unslice` after the rollback)."""
    try:
        con.execute("RESET VARIABLE pacscopy_slices")
        con.execute("RESET VARIABLE pacscopy_slice")
        con.execute("DROP TABLE IF EXISTS temp.main.manifest_compare")
    except duckdb.Error:
        if not quiet:
            raise


def unslice(con: duckdb.DuckDBPyConnection) -> None:
    """After a rollback of a transaction in which a sliced evaluation failed: no slice set any more."""
    _whole(con, quiet=True)


def kept(con: duckdb.DuckDBPyConnection, target: str) -> tuple[Counts, dt.datetime] | None:
    """The kept figures for ``target`` and when they were last changed, if they hold for the index now."""
    row = con.execute("SELECT fingerprint, updated_at FROM status_kept WHERE target = $t", {"t": target}).fetchone()
    if row is None or row[0] != fingerprint(con):
        return None
    rows = con.execute("SELECT final_state, instances, bytes, warnings FROM status_counts WHERE target = $t",
                       {"t": target}).fetchall()
    return {r[0]: StateCount(*r) for r in rows if r[1]}, row[1]


def store(con: duckdb.DuckDBPyConnection, target: str, counts: Counts, fp: str, *,
          on_total: Callable[[int], None] | None = None, on_progress: Callable[[int], None] | None = None) -> bool:
    """Keep ``target``'s figures, counted on the index state ``fp``, if the index is still in that state
    (its slices told to ``on_total`` and ``on_progress``: :func:`in_slices`).

    Runs in a transaction of its own: every planned instance's state goes into ``status_instances``
    (a full evaluation) and the figures kept are their sums (``counts``, counted on the same state,
    gives the same figures). Returns whether the figures were kept.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        if fingerprint(con) != fp:
            con.execute("ROLLBACK")
            return False
        _fill(con, target, on_total=on_total, on_progress=on_progress)
        _replace(con, target, summary(con, target), fp, counted=True)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        unslice(con)
        raise
    return True


def recount(con: duckdb.DuckDBPyConnection, target: str, *, on_total: Callable[[int], None] | None = None,
            on_progress: Callable[[int], None] | None = None) -> Counts:
    """Count ``target``'s figures in full and keep them (one evaluation, in a transaction of its own;
    its slices told to ``on_total`` and ``on_progress``: :func:`in_slices`)."""
    con.execute("BEGIN TRANSACTION")
    try:
        fp = fingerprint(con)
        _fill(con, target, on_total=on_total, on_progress=on_progress)
        counts = summary(con, target)
        _replace(con, target, counts, fp, counted=True)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        unslice(con)
        raise
    return counts


def summary(con: duckdb.DuckDBPyConnection, target: str) -> Counts:
    """``target``'s figures summed from its kept instances (table ``status_instances``)."""
    cur = run(con, "ops/status/instance_summary", {"target": target})
    return {r[0]: StateCount(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in cur.fetchall()}


def _instance_select() -> str:
    # package SQL, not user input: wrapped, never formatted with values
    return load_sql("ops/status/instance_states").strip().rstrip(";")


def _fill(con: duckdb.DuckDBPyConnection, target: str, *, on_total: Callable[[int], None] | None = None,
          on_progress: Callable[[int], None] | None = None) -> None:
    """Every planned instance's state for ``target`` into ``status_instances`` (a full evaluation, in slices).

    The slices are evaluated into a temporary table first and the old states replaced after: at 50 M
    files a slice evaluated after the transaction had deleted the target's 49 M old states ran out of
    DuckDB's default 1 GB at once, and status, which keeps its count this way, counted for 15 minutes
    each time without keeping it (BENCHMARKS.md, "The first count")."""
    sel = _instance_select()
    con.execute(f"CREATE OR REPLACE TEMP TABLE status_fill {_STATE_COLS}")
    try:
        in_slices(con, lambda: con.execute(f"INSERT INTO temp.main.status_fill SELECT * FROM ({sel})",
                                           {"target": target}), on_total=on_total, on_progress=on_progress)
        con.execute("DELETE FROM status_instances WHERE target = $target", {"target": target})
        con.execute("INSERT INTO status_instances SELECT * FROM temp.main.status_fill")
    except BaseException:
        _drop(con, "status_fill", quiet=True)
        raise
    _drop(con, "status_fill")


def _drop(con: duckdb.DuckDBPyConnection, *names: str, quiet: bool = False) -> None:
    """Drop temporary tables ``names`` if they exist. ``quiet``: after an error, which may have aborted
    the transaction (whose rollback drops them too): that error is the one to report, not this."""
    for name in names:
        try:
            con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")
        except duckdb.Error:
            if not quiet:
                raise


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

    Targets whose kept figures were already stale are counted too, on the index as the writer
    leaves it.
    """
    targets = [r[0] for r in con.execute("SELECT target FROM status_kept ORDER BY 1").fetchall()]
    if not targets:
        return
    fp = fingerprint(con)
    for t in targets:
        _fill(con, t)
        _replace(con, t, summary(con, t), fp, counted=True)


def forget(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every kept figure (the next status counts): for writers that change the books wholesale.

    The kept instances' states (``status_instances``) stay, unread: every reader and writer asks
    ``status_kept`` first (:func:`kept`, :func:`_valid_targets`), and a count replaces a target's
    states. Deleting them here gave the writer's transaction the undo data of every row: at 50 M
    files 49 M rows, inside a full check that already works near the default 1 GB (whether this is
    what made such a check run out of memory there was not established: it still did, later on)."""
    con.execute("DELETE FROM status_kept")
    con.execute("DELETE FROM status_counts")


_STATE_COLS = "(target VARCHAR, sop_key UHUGEINT, final_state VARCHAR, bytes BIGINT, warning BOOLEAN)"


def _move(con: duckdb.DuckDBPyConnection, targets: list[str], sops: Sequence[str] | None) -> dict[str, tuple[Counts, Counts]]:
    """Re-evaluate instances ``sops`` for ``targets`` and move them in ``status_instances``; per target
    the (old, new) figures of the batch's instances. ``sops`` None: the batch is temporary table
    ``status_batch`` as the caller made it (:func:`replanning`).

    The batch's states are evaluated once, after the write, by ``final_states`` over slices of the
    books that hold only the batch's rows (``sql/ops/status/slices.sql``: temporary tables that
    shadow the real ones until dropped, whatever happens); their old states are read by key from
    ``status_instances``.
    """
    _whole(con)
    if sops is not None:
        _batch(con, sops)
    con.execute(f"CREATE OR REPLACE TEMP TABLE status_new {_STATE_COLS}")
    sel = _instance_select()
    with _slices(con):
        for t in targets:
            con.execute(f"INSERT INTO status_new SELECT * FROM ({sel})", {"target": t})
    out: dict[str, tuple[Counts, Counts]] = {}
    agg = ("SELECT final_state, count(*), coalesce(sum(bytes), 0)::BIGINT, count(*) FILTER (WHERE warning) "
           "FROM {} WHERE {} GROUP BY 1")
    for t in targets:
        run_script(con, "ops/status/move_batch", {"target": t})
        old = {r[0]: StateCount(*r) for r in con.execute(agg.format("temp.main.status_old", "true")).fetchall()}
        new = {r[0]: StateCount(*r) for r in con.execute(agg.format("temp.main.status_new", "target = $t"),
                                                          {"t": t}).fetchall()}
        out[t] = (old, new)
    _drop(con, "status_batch", "status_new", "status_old")
    return out


def _batch(con: duckdb.DuckDBPyConnection, sops: Sequence[str]) -> None:
    """Temporary table ``status_batch``: the instances ``sops`` with their keys (what the slices hold)."""
    key = "sop_hash_of(s)" if _applied(con, KEYED_SCHEMA) else "NULL::UBIGINT"
    con.execute("CREATE OR REPLACE TEMP TABLE status_batch AS SELECT DISTINCT s AS sop_instance_uid, "
                f"md5_number(s) AS sop_key, {key} AS sop_hash FROM unnest($sops::VARCHAR[]) AS t(s)",
                {"sops": list(sops)})


#: The big tables a batch's slice reads by row-id runs, and the runs per table
#: (``sql/ops/status/slices.sql`` has this many ``$<table>_lo<i>``/``_hi<i>`` slots).
SLICED_TABLES = ("files", "plan_auto", "transfers", "verifications")
SLICE_RUNS = 8

#: A gap between a batch's rows narrower than this many row ids does not start a new run: DuckDB
#: skips by row group (122,880 rows), so a narrower gap saves nothing.
SLICE_MIN_GAP = 122_880


class RowRun(NamedTuple):
    """One run of a batch's row ids in one big table (``sql/ops/status/slice_runs.sql``)."""

    tbl: str
    slot: int
    lo: int
    hi: int


def _slice_runs(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """The parameters of ``sql/ops/status/slices.sql``: per big table, the row-id runs that hold
    ``status_batch``'s rows (found by key: ``sql/ops/status/slice_rows.sql``); an unused run is 1..0.

    Only the row groups inside a run are read. A semi join on row ids alone would skip only what lies
    outside the lowest and highest id, and the rows the writer's own transaction has just added have
    ids far above the table's: every row group would be decoded (BENCHMARKS.md, "A writer's batch by
    row-id runs")."""
    run_script(con, "ops/status/slice_rows")
    params = {f"{t}_{end}{i}": v for t in SLICED_TABLES for i in range(SLICE_RUNS) for end, v in (("lo", 1), ("hi", 0))}
    for r in fetch(con, "ops/status/slice_runs", RowRun, {"runs": SLICE_RUNS, "min_gap": SLICE_MIN_GAP}):
        params[f"{r.tbl}_lo{r.slot}"], params[f"{r.tbl}_hi{r.slot}"] = r.lo, r.hi
    return params


@contextmanager
def _slices(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Inside the block the books hold only ``status_batch``'s instances (``sql/ops/status/slices.sql``:
    temporary tables shadowing the real ones), dropped after it whatever happens."""
    try:
        if _applied(con, KEYED_SCHEMA):
            run_script(con, "ops/status/slices", _slice_runs(con))
        else:
            run_script(con, "ops/status/slices_uid")
        yield
    except BaseException:
        try:  # an error may abort the writer's transaction, which drops them too; else never leave them
            run_script(con, "ops/status/slices_drop")
        except duckdb.Error:
            pass
        raise
    run_script(con, "ops/status/slices_drop")


@contextmanager
def keeping(con: duckdb.DuckDBPyConnection, target: str | None, sops: Sequence[str]) -> Iterator[None]:
    """Around a recorded batch of work for instances ``sops``, inside the writer's transaction.

    ``target``: the batch is ``target``'s books (transfers, verifications); None: it changes
    the instances for every target (a decision). For each target whose kept figures hold, the
    batch's instances move from their kept states (``status_instances``, read by key) to their
    states after the block (evaluated over the batch's slices of the books); other targets' kept
    figures stay valid (their states do not depend on ``target``'s books). Stale figures are left
    stale (status counts them again).
    """
    fp = fingerprint(con)
    valid = _valid_targets(con, fp)
    mine = [t for t in valid if target is None or t == target]
    yield
    if not valid:
        return
    after_fp = fingerprint(con)
    if mine and sops:
        _shift(con, _move(con, mine, sops), after_fp)
    for t in valid:
        if not (mine and sops and t in mine):
            con.execute("UPDATE status_kept SET fingerprint = $fp WHERE target = $t", {"fp": after_fp, "t": t})


def _shift(con: duckdb.DuckDBPyConnection, moved: dict[str, tuple[Counts, Counts]], fp: str) -> None:
    """Move each target's kept figures by its batch's (old, new) figures; the index state is now ``fp``."""
    for t, (before, after) in moved.items():
        cur = {r[0]: StateCount(*r) for r in con.execute(
            "SELECT final_state, instances, bytes, warnings FROM status_counts WHERE target = $t", {"t": t}).fetchall()}
        for state in set(before) | set(after):
            b = before.get(state, StateCount(state, 0, 0, 0))
            a = after.get(state, StateCount(state, 0, 0, 0))
            c = cur.get(state, StateCount(state, 0, 0, 0))
            cur[state] = StateCount(state, c.instances - b.instances + a.instances, c.bytes - b.bytes + a.bytes,
                                    c.warnings - b.warnings + a.warnings)
        _replace(con, t, cur, fp, counted=False)


@contextmanager
def replanning(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Around a full rebuild of the plan (a full check), in the writer's transaction: the kept figures
    move by the instances whose plan row the rebuild changed, added or removed, instead of a count
    of every instance (at 50 M files a full evaluation is 70 slices, each reading the books).

    The rebuild sets the old plan aside as table ``plan_auto_replaced`` (``sql/ops/check/
    plan_rebuild_begin.sql``) and leaves it for the end of this block, which compares the two
    (``sql/ops/status/replanned.sql``: a digest of each row by its instance's key, on both tables on
    disk, joined and spilled as DuckDB needs) and moves the instances that differ as :func:`keeping`
    moves a writer's batch. The caller drops the old plan after the block. When more instances
    changed than one slice of a full evaluation holds (a first check, new rules), every kept target
    is counted again instead (:func:`recount_kept`), which then costs less. Targets whose figures
    were stale already stay stale (status counts them when asked).
    """
    valid = _valid_targets(con, fingerprint(con))
    if not valid:
        yield
        return
    try:
        yield
        run_script(con, "ops/status/replanned")
        row = con.execute("SELECT count(*) FROM temp.main.status_batch").fetchone()
        changed = int(row[0]) if row else 0
        log.info("the plan changed for %s instances", changed)
        if changed > slice_instances(con):
            recount_kept(con)
            return
        fp = fingerprint(con)
        _shift(con, _move(con, valid, None), fp)
        for t in [r[0] for r in con.execute("SELECT target FROM status_kept ORDER BY 1").fetchall()]:
            if t not in valid:
                log.info("status figures of %s were stale before the check: counted when status asks", t)
    finally:
        _drop(con, "replanned_keys", "status_batch", quiet=True)


def load_count_sql() -> str:
    """The counting SQL (part of the status file cache's key)."""
    return load_sql("ops/status/count_states")


# -- readers of every instance's state (reconcile) ------------------------------------------------

def evaluate(con: duckdb.DuckDBPyConnection, target: str, *, on_total: Callable[[int], None] | None = None,
             on_progress: Callable[[int], None] | None = None) -> None:
    """Every planned instance's state for ``target``, evaluated in full into a temporary table
    ``status_instances`` that shadows the kept one until :func:`drop_evaluated` (for a reader whose
    kept states do not hold and that cannot keep them: a read-only connection). Its slices are told
    to ``on_total`` and ``on_progress`` (:func:`in_slices`)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE status_instances {_STATE_COLS}")
    sel = _instance_select()
    in_slices(con, lambda: con.execute(f"INSERT INTO temp.main.status_instances SELECT * FROM ({sel})",
                                       {"target": target}), on_total=on_total, on_progress=on_progress)


def drop_evaluated(con: duckdb.DuckDBPyConnection) -> None:
    """Drop :func:`evaluate`'s temporary table (the kept ``status_instances`` is seen again)."""
    _drop(con, "status_instances")


@contextmanager
def sliced(con: duckdb.DuckDBPyConnection, sops: Sequence[str]) -> Iterator[None]:
    """Inside the block the books hold only instances ``sops``: ``final_states`` and the views over
    the books give those instances' rows as over the whole index, reading only theirs (temporary
    tables that shadow the real ones, ``sql/ops/status/slices.sql``; dropped after the block,
    whatever happens)."""
    _whole(con)
    _batch(con, sops)
    try:
        with _slices(con):
            yield
    finally:
        _drop(con, "status_batch")


@contextmanager
def keeping_if_kept(con: duckdb.DuckDBPyConnection, sops: list[str]) -> Iterator[bool]:
    """:func:`keeping` for every target (a write of files or of the plan: a scan's batch, an
    incremental check), if any target's figures are kept; else nothing. Yields whether it keeps them:
    only then need the block fill ``sops`` (read after the block) with the SOPInstanceUIDs whose
    rows it changed (their values before and after)."""
    if not figures_kept(con):
        yield False
        return
    with keeping(con, None, sops):
        yield True


def figures_kept(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether any target's figures are kept (then a writer keeps them current: :func:`keeping_if_kept`)."""
    row = con.execute("SELECT count(*) FROM status_kept").fetchone()
    return bool(row and row[0])
