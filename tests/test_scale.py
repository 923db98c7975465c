"""The index at hospital scale (issue 12): the scalable SQL gives the same results; bounded memory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pacscopy.check.checks import run_checks
from pacscopy.index import open_index, run_script
from pacscopy.send.transcode import plan_params
from pacscopy.testing import scale

REFERENCE = Path(__file__).with_name("build_plan_reference.sql")
PLAN = "SELECT * FROM plan_auto ORDER BY sop_instance_uid"


def _reference_plan(con) -> list[tuple]:
    """plan_auto as the window-over-whole-rows formulation computes it (tests/build_plan_reference.sql)."""
    from pacscopy.index import split_statements

    params = plan_params()
    con.execute("BEGIN TRANSACTION")
    for stmt in split_statements(REFERENCE.read_text()):
        con.execute(stmt, {k: v for k, v in params.items() if f"${k}" in stmt})
    got = con.execute(PLAN).fetchall()
    con.execute("ROLLBACK")
    return got


def _mixed(con) -> None:
    """Every tie the copy choice breaks: triples, suspect/missing/corrupt copies, raw datasets,
    implicit VR copies, later scans, a probed target that refuses some classes and syntaxes."""
    con.execute("""
        UPDATE files SET sop_instance_uid = (SELECT f2.sop_instance_uid FROM files f2
                                             WHERE f2.mtime_ns = files.mtime_ns - 2)
        WHERE mtime_ns % 100 = 2;
        UPDATE files SET status = 'suspect', reason = 'zero_block' WHERE mtime_ns % 7 = 1;
        UPDATE files SET status = 'missing' WHERE mtime_ns % 11 = 2;
        UPDATE files SET status = 'corrupt', reason = 'truncated' WHERE mtime_ns % 13 = 0;
        UPDATE files SET has_meta = false WHERE mtime_ns % 5 = 0;
        UPDATE files SET transfer_syntax_uid = '1.2.840.10008.1.2' WHERE mtime_ns % 3 = 0;
        UPDATE files SET scanned_at = scanned_at + INTERVAL 1 DAY WHERE mtime_ns % 4 = 1;
        UPDATE files SET dataset_xxh3 = md5(path) WHERE mtime_ns % 300 = 2;
        INSERT INTO target_capabilities (target, sop_class_uid, transfer_syntax_uid, accepted) VALUES
            ('T@h:1', '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1', true),
            ('T@h:1', '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2', true),
            ('T@h:1', '1.2.840.10008.5.1.4.1.1.4', '1.2.840.10008.1.2.1', false);
    """)


@pytest.mark.parametrize("mixed", [False, True])
def test_plan_equals_the_reference_on_a_generated_archive(tmp_path: Path, mixed: bool) -> None:
    con = open_index(str(tmp_path / "s.duckdb"), create=True)
    try:
        scale.fill(con, 6000)
        if mixed:
            _mixed(con)
        run_checks(con)
        got = con.execute(PLAN).fetchall()
        assert len(got) > 5000
        dispositions = {r[2] for r in got}
        assert {"send", "hold", "quarantine"} <= dispositions
        if mixed:
            assert "blocked" in dispositions and any(r[11] for r in got)  # a transcode_to
            assert any(r[4] > 2 for r in got)  # triples
        assert got == _reference_plan(con)
    finally:
        con.close()


def test_plan_equals_the_reference_on_the_planted_archive(scanned: Path, tmp_path: Path) -> None:
    idx = tmp_path / "planted.duckdb"
    shutil.copy(scanned, idx)
    con = open_index(str(idx))
    try:
        run_checks(con)
        got = con.execute(PLAN).fetchall()
        assert {r[2] for r in got} >= {"send", "hold", "quarantine"}
        assert got == _reference_plan(con)
    finally:
        con.close()


def test_generated_archive_has_the_shapes(tmp_path: Path) -> None:
    con = open_index(str(tmp_path / "s.duckdb"), create=True)
    try:
        scale.fill(con, 3000)
        n, path_len, uid_len, dups, corrupt, studies, series = con.execute("""
            SELECT count(*), avg(length(path)), avg(length(sop_instance_uid)),
                   count(*) - count(DISTINCT sop_instance_uid), count(*) FILTER (WHERE status = 'corrupt'),
                   count(DISTINCT study_instance_uid), count(DISTINCT series_instance_uid)
            FROM files""").fetchone()
        assert n == 3000 and 85 <= path_len <= 100 and 48 <= uid_len <= 60
        assert dups == 33 and corrupt == 3  # 1 % + 0.1 % duplicates, 0.1 % corrupt
        assert studies == 20 and series == 60
        assert con.execute("SELECT count(*) FROM transfers").fetchone()[0] > 1000
        assert con.execute("SELECT count(*) FROM verifications").fetchone()[0] > 500
    finally:
        con.close()
