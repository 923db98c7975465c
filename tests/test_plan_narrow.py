"""The plan rebuilt on narrow keys (issue 15: 5 million instances checked in under a minute).

build_plan aggregates row ids and a packed sort key per SOPInstanceUID and settles the instances
with several copies (ties broken by path, conflicting contents) separately; plan_auto lost its
PRIMARY KEY index (migration 0022). These tests hold what the narrow formulation must keep: the
reference plan (tests/build_plan_reference.sql) where only the path breaks a tie, and one row per
SOPInstanceUID without the index that used to enforce it.
"""

from __future__ import annotations

from pathlib import Path

from pacscopy.check.checks import run_checks
from pacscopy.index import open_index
from pacscopy.testing import scale
from .conftest import fail_after_script
from tests.test_scale import PLAN, _reference_plan


def test_a_tie_on_everything_but_the_path_sends_the_first_path(tmp_path: Path) -> None:
    """Copies equal in status, encoding and scan time: the first path is sent, whichever copy the
    index holds first (here the later path is written first, so "the first row seen" is wrong)."""
    con = open_index(str(tmp_path / "s.duckdb"), create=True)
    try:
        scale.fill(con, 3000)
        con.execute("""
            UPDATE files SET scanned_at = TIMESTAMP '2026-01-01 00:00:00';
            CREATE TEMP TABLE t AS SELECT * FROM files WHERE mtime_ns % 40 = 0 AND status = 'ok';
            DELETE FROM files WHERE path IN (SELECT path FROM t);
            INSERT INTO files SELECT * REPLACE ('/zz-later-copy' || path AS path) FROM t;
            INSERT INTO files SELECT * FROM t;
        """)
        run_checks(con)
        got = con.execute(PLAN).fetchall()
        tied = con.execute("""
            SELECT count(*), count(*) FILTER (WHERE p.path = t.path)
            FROM plan_auto p JOIN t USING (sop_instance_uid)""").fetchone()
        assert tied is not None and tied[0] >= 70 and tied[1] == tied[0], tied
        assert got == _reference_plan(con)
    finally:
        con.close()


def test_one_plan_row_per_instance_without_an_index(tmp_path: Path) -> None:
    """build_plan writes one row per SOPInstanceUID, also when a second full check replaces the
    plan in one transaction (what ran out of memory at 5 M with the PRIMARY KEY index)."""
    con = open_index(str(tmp_path / "s.duckdb"), create=True)
    try:
        scale.fill(con, 4000)
        for full in (False, True):
            run_checks(con, full=full)
            n, distinct, files = con.execute("""
                SELECT count(*), count(DISTINCT sop_instance_uid),
                       (SELECT count(DISTINCT sop_instance_uid) FROM files
                        WHERE status IN ('ok', 'suspect', 'corrupt', 'missing'))
                FROM plan_auto""").fetchone()
            assert n == distinct == files > 3900
        keys = con.execute("""SELECT count(*) FROM duckdb_constraints()
                              WHERE table_name = 'plan_auto' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')""")
        assert keys.fetchone() == (0,)
    finally:
        con.close()


def test_a_full_check_replaces_the_plan_table_and_a_failed_one_keeps_the_old(tmp_path: Path, monkeypatch) -> None:
    """A full check writes the plan into a new table that replaces plan_auto (at 50 M instances a
    DELETE of every row beside the INSERT ran DuckDB's 1 GB out of memory): the same definition
    (every migration's columns and NOT NULLs), the plan view reading the new rows, nothing set
    aside left behind. A check that fails while building it changes nothing: the old plan stays."""
    import duckdb
    import pytest

    from pacscopy.check import checks

    con = open_index(str(tmp_path / "s.duckdb"), create=True)
    try:
        scale.fill(con, 3000)
        ddl = "SELECT sql FROM duckdb_tables() WHERE table_name = 'plan_auto'"
        before_ddl = con.execute(ddl).fetchall()
        run_checks(con)
        plan = con.execute("SELECT * FROM plan ORDER BY sop_instance_uid").fetchall()
        assert len(plan) > 2900
        oid = "SELECT table_oid FROM duckdb_tables() WHERE table_name = 'plan_auto'"
        first = con.execute(oid).fetchone()
        con.execute("UPDATE files SET status = 'corrupt', reason = 'truncated' WHERE rowid % 10 = 0")
        run_checks(con, full=True)
        assert con.execute(oid).fetchone() != first  # a new table, not the old one emptied
        assert con.execute(ddl).fetchall() == before_ddl
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'plan_auto%'").fetchone() == (1,)
        replanned = con.execute("SELECT * FROM plan ORDER BY sop_instance_uid").fetchall()
        assert replanned != plan and len(replanned) == len(plan)
        assert con.execute(PLAN).fetchall() == _reference_plan(con)

        fail_after_script(monkeypatch, checks, "ops/check/build_plan", duckdb.OutOfMemoryException(
            "Out of Memory Error: failed to pin block (953.5 MiB/953.6 MiB used)"))
        con.execute("UPDATE files SET status = 'ok', reason = NULL WHERE rowid % 10 = 0")
        with pytest.raises(duckdb.OutOfMemoryException):
            run_checks(con, full=True)
        assert con.execute("SELECT * FROM plan ORDER BY sop_instance_uid").fetchall() == replanned
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'plan_auto%'").fetchone() == (1,)
    finally:
        con.close()


def test_the_disposition_summary_equals_the_plan_view_with_every_kind_of_decision(tmp_path: Path) -> None:
    """check's summary per disposition groups plan_auto alone and moves the decided instances (not a
    join of every instance with decisions: ~11 s of every check at 50 M); it must equal the plan
    view's figures, whatever the decisions: each action, on instances of each automatic disposition,
    one moving every instance out of a disposition (which then is no row at all)."""
    from pacscopy.check.checks import plan_summary

    def by_view(c) -> list[tuple]:
        return c.execute("""SELECT disposition, count(*), count(*) FILTER (WHERE decided), coalesce(sum(size), 0)
                            FROM plan GROUP BY 1 ORDER BY 1""").fetchall()

    con = open_index(str(tmp_path / "s.duckdb"), create=True)
    try:
        scale.fill(con, 3000)
        run_checks(con)
        assert [tuple(p) for p in sorted(plan_summary(con))] == by_view(con)
        autos = dict(con.execute("SELECT disposition, count(*) FROM plan_auto GROUP BY 1").fetchall())
        assert {"send", "hold", "quarantine"} <= set(autos) and autos["hold"] >= 3, autos  # the third held: keep
        con.execute("""
            INSERT INTO decisions (sop_instance_uid, action, note)
            SELECT sop_instance_uid,
                   CASE WHEN disposition = 'quarantine' THEN 'send'          -- every one of them
                        ELSE ['send', 'skip', 'hold', 'keep', 'remove'][
                                 1 + (row_number() OVER (PARTITION BY disposition ORDER BY sop_instance_uid)) % 5]
                   END, 'test'
            FROM plan_auto  -- every held instance, each action in turn; every 7th to send
            WHERE disposition IN ('quarantine', 'hold') OR (disposition = 'send' AND hash(sop_instance_uid) % 7 = 0)""")
        got = sorted(tuple(p) for p in plan_summary(con))
        assert got == by_view(con)
        assert "quarantine" not in {g[0] for g in got} and "skip" in {g[0] for g in got}
        assert sum(g[2] for g in got) == con.execute("SELECT count(*) FROM decisions").fetchone()[0] > 100
    finally:
        con.close()
