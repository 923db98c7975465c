"""status's figures kept by key (issue 12, schema 0020, pacscopy/send/status_counts.py).

Every kept target's planned instances are in status_instances with their final state; a writer's
batch is evaluated once, over slices of the books that shadow the real tables, and moved by key.
Here on a generated archive whose books reach every kind of state, batch after batch of each kind of
write: the kept instances equal a full evaluation and the figures equal the status query before
0017 (tests/send_status_reference.sql); a failure or a kill -9 in the middle of the keeping leaves
neither a shadow table nor a wrong figure.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from pacscopy.check.checks import run_checks
from pacscopy.check.decisions import Decision, record_decisions
from pacscopy.index import open_index, transaction
from pacscopy.send import status_counts
from pacscopy.testing import scale

from .conftest import fail_after_script
from .test_status_counts import _figures, _mixed_books, _reference, assert_instances_equal_a_full_evaluation

T = scale.TARGET
OTHER = "OTHER@h:1"


def _assert_right(con) -> None:
    for t in (T, OTHER):
        kept = status_counts.kept(con, t)
        assert kept is not None, f"{t}: the kept figures went stale"
        assert _figures(kept[0]) == _reference(con, t)
        assert_instances_equal_a_full_evaluation(con, t)
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchone()[0] == 0


def _sops(con, sql: str, n: int) -> list[str]:
    return [r[0] for r in con.execute(f"SELECT sop_instance_uid FROM ({sql}) ORDER BY hash(sop_instance_uid) LIMIT $n",
                                      {"n": n}).fetchall()]


def _insert_transfers(con, target: str, sops: list[str], outcome: str, offset: str) -> None:
    con.execute(f"""
        INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, outcome, source_xxh3,
                               sent_patient_id, is_update, error, sop_hash)
        SELECT 7, $t, p.sop_instance_uid, p.path, now() + INTERVAL {offset}, now() + INTERVAL {offset}, $o,
               f.dataset_xxh3, f.patient_id, false, CASE WHEN $o = 'failed' THEN 'timeout' END, sop_hash_of(p.sop_instance_uid)
        FROM plan p JOIN files f ON f.path = p.path
        WHERE p.sop_instance_uid IN (SELECT unnest($s::VARCHAR[]))""", {"t": target, "o": outcome, "s": sops})


@pytest.fixture(scope="module")
def books(tmp_path_factory) -> Path:
    idx = tmp_path_factory.mktemp("inst") / "i.duckdb"
    con = open_index(str(idx), create=True)
    try:
        scale.fill(con, 12000, sent=0.6)
        run_checks(con)
        _mixed_books(con)
    finally:
        con.close()
    return idx


def test_every_writers_batch_moves_its_instances_and_the_figures_stay_right(books: Path, tmp_path: Path) -> None:
    idx = tmp_path / "w.duckdb"
    idx.write_bytes(books.read_bytes())
    con = open_index(str(idx))
    try:
        for t in (T, OTHER):
            status_counts.recount(con, t)
        states = dict(con.execute("SELECT final_state, count(*) FROM status_instances WHERE target = $t GROUP BY 1",
                                  {"t": T}).fetchall())
        assert {"not_sent", "stored_unverified", "verified", "failed", "excluded_decision", "mismatch",
                "deleted_in_source"} <= set(states), states
        _assert_right(con)
        before = dict(con.execute("SELECT target, updated_at FROM status_kept").fetchall())

        # a send's batch: stored, some with a warning, some failing; the batch mixes new and stored instances
        not_sent = _sops(con, f"SELECT sop_instance_uid FROM final_states('{T}') WHERE final_state = 'not_sent'", 300)
        stored = _sops(con, f"SELECT sop_instance_uid FROM final_states('{T}') WHERE final_state = 'stored_unverified'", 50)
        with transaction(con), status_counts.keeping(con, T, not_sent + stored):
            _insert_transfers(con, T, not_sent[:200] + stored, "stored", "1 DAY")
            _insert_transfers(con, T, not_sent[200:250], "warning", "1 DAY")
            _insert_transfers(con, T, not_sent[250:], "failed", "1 DAY")
        moved = dict(con.execute("SELECT final_state, count(*) FROM status_instances WHERE target = $t GROUP BY 1",
                                 {"t": T}).fetchall())
        assert moved["failed"] >= states["failed"] + 50 and moved["stored_unverified"] >= states["stored_unverified"] + 200
        _assert_right(con)

        # verify's batch: find, commit and retrieve results (verified, missing, a mismatch)
        with transaction(con), status_counts.keeping(con, T, not_sent[:250]):
            con.execute("""
                INSERT INTO verifications (target, sop_instance_uid, mode, verified_at, outcome, detail, sop_hash)
                SELECT $t, s, CASE WHEN i % 3 = 0 THEN 'find' WHEN i % 3 = 1 THEN 'commit' ELSE 'retrieve' END,
                       now() + INTERVAL 2 DAY, CASE WHEN i % 7 = 0 THEN 'missing_on_target'
                                                   WHEN i % 11 = 0 THEN 'mismatch' ELSE 'verified' END, 'k', sop_hash_of(s)
                FROM unnest($s::VARCHAR[]) WITH ORDINALITY AS u(s, i)""", {"t": T, "s": not_sent[:250]})
        _assert_right(con)

        # the other target's books change: only its figures move, ours stay kept
        with transaction(con), status_counts.keeping(con, OTHER, not_sent[:100]):
            _insert_transfers(con, OTHER, not_sent[:100], "stored", "3 DAY")
        _assert_right(con)

        # a decision (every target): skip some, hold some, send a held one
        held = _sops(con, f"SELECT sop_instance_uid FROM final_states('{T}') WHERE final_state = 'awaiting_decision'", 5)
        record_decisions(con, [Decision(s, "skip", "t") for s in not_sent[:20]]
                         + [Decision(s, "hold", "t") for s in stored[:10]] + [Decision(s, "send", "t") for s in held])
        _assert_right(con)

        after = dict(con.execute("SELECT target, counted_at FROM status_kept").fetchall())
        assert after == {t: before[t] for t in after}, "kept by key, never counted again in full"
        # instances outside the plan are no batch's business: a batch of unknown UIDs changes nothing
        n = con.execute("SELECT count(*) FROM status_instances").fetchone()[0]
        with transaction(con), status_counts.keeping(con, T, ["1.2.3.4.5.999"]):
            pass
        assert con.execute("SELECT count(*) FROM status_instances").fetchone()[0] == n
        _assert_right(con)
    finally:
        con.close()


def test_a_failure_in_the_keeping_rolls_the_write_back_and_leaves_no_shadow(books: Path, tmp_path: Path,
                                                                             monkeypatch) -> None:
    idx = tmp_path / "f.duckdb"
    idx.write_bytes(books.read_bytes())
    con = open_index(str(idx))
    try:
        for t in (T, OTHER):
            status_counts.recount(con, t)
        sops = _sops(con, f"SELECT sop_instance_uid FROM final_states('{T}') WHERE final_state = 'not_sent'", 100)
        n = con.execute("SELECT count(*) FROM transfers").fetchone()[0]
        fail_after_script(monkeypatch, status_counts, "ops/status/slices", duckdb.OutOfMemoryException("planted"))
        with pytest.raises(duckdb.OutOfMemoryException, match="planted"):
            with transaction(con), status_counts.keeping(con, T, sops):
                _insert_transfers(con, T, sops, "stored", "1 DAY")
        monkeypatch.undo()  # the real run_script again
        assert con.execute("SELECT count(*) FROM transfers").fetchone()[0] == n  # the real table, as it was
        _assert_right(con)
        with transaction(con), status_counts.keeping(con, T, sops):  # the same connection writes on, kept
            _insert_transfers(con, T, sops, "stored", "1 DAY")
        assert con.execute("SELECT count(*) FROM transfers").fetchone()[0] == n + 100
        _assert_right(con)
    finally:
        con.close()


@pytest.mark.parametrize("step", ["ops/status/slices", "ops/status/move_batch"])
def test_a_kill_in_the_middle_of_the_keeping_leaves_the_figures_right(books: Path, tmp_path: Path, step: str) -> None:
    """kill -9 after the write and the slices (or after the move, before the summary): the writer's one
    transaction is lost whole; the next open finds the figures holding and equal to a full count."""
    idx = tmp_path / "k.duckdb"
    idx.write_bytes(books.read_bytes())
    con = open_index(str(idx))
    try:
        for t in (T, OTHER):
            status_counts.recount(con, t)
        n = con.execute("SELECT count(*) FROM transfers").fetchone()[0]
    finally:
        con.close()
    code = textwrap.dedent(f"""
        import os, signal, sys
        from pacscopy.index import open_index, transaction
        from pacscopy.send import status_counts
        real = status_counts.run_script
        def dying(c, name, params=None):
            real(c, name, params)
            if name == {step!r}:
                os.kill(os.getpid(), signal.SIGKILL)
        status_counts.run_script = dying
        con = open_index(sys.argv[1])
        sops = [r[0] for r in con.execute("SELECT sop_instance_uid FROM plan WHERE disposition = 'send' LIMIT 200").fetchall()]
        with transaction(con), status_counts.keeping(con, {T!r}, sops):
            con.execute("INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, outcome, sop_hash) "
                        "SELECT 8, $t, sop_instance_uid, path, now(), now(), 'stored', sop_hash_of(sop_instance_uid) FROM plan "
                        "WHERE sop_instance_uid IN (SELECT unnest($s::VARCHAR[]))", {{"t": {T!r}, "s": sops}})
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(idx)], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    con = open_index(str(idx))
    try:
        assert con.execute("SELECT count(*) FROM transfers").fetchone()[0] == n
        _assert_right(con)
    finally:
        con.close()
