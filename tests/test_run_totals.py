"""A send run's totals so far (schema 0034): kept by every writer of ``transfers`` in the transaction that
records the attempts, so that status reads one row of ``send_runs`` instead of the run's transfers (at
30 M transfers in one run, 0.4 s of status's second at 50 M files: BENCHMARKS.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pacscopy import index as idxmod
from pacscopy.dicom.peer import Target
from pacscopy.receive import Receiver
from pacscopy.send.options import SendOptions
from pacscopy.send.queue import last_run
from pacscopy.send.send import send

from .conftest import assert_run_totals, index_before, rows


def test_each_run_s_totals_are_kept_as_its_attempts_are_recorded_and_status_shows_its_rate(planned: Path,
                                                                                          tmp_path: Path, cli) -> None:
    rx = Receiver(tmp_path / "rx")
    port = rx.start()
    try:
        target = Target("RX", "127.0.0.1", port)
        con = idxmod.open_index(str(planned))
        try:  # the books written in the send's own transactions (no journal)
            assert send(con, target, SendOptions(associations=1, limit=5)).stored == 5
            assert last_run(con, str(target))[3:] == (5, rows_bytes(con, 1))
        finally:
            con.close()
        r = cli("send", "--target", str(target), "--index", planned, "-q")  # merged from its journal
        assert r.code == 0, r.out
    finally:
        rx.stop()
    assert_run_totals(planned)
    (started, ended, stored, nbytes), = rows(planned, "SELECT started, finished, recorded_stored, recorded_bytes "
                                                      "FROM send_runs WHERE run_id = 2")
    assert stored == 10 and nbytes > 0
    s = cli("status", "--target", str(target), "--index", planned)
    assert s.code == 0, s.out
    seconds = (ended - started).total_seconds()
    assert f"latest run 2: {stored / seconds:.1f} instances/s, {nbytes / 1e6 / seconds:.1f} MB/s" in s.out, s.out


def rows_bytes(con, run_id: int) -> int:
    return con.execute("SELECT sum(bytes) FROM transfers WHERE run_id = $r AND outcome = 'stored'",
                       {"r": run_id}).fetchone()[0]


def test_the_migration_adds_up_the_runs_already_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "old.duckdb"
    t0 = dt.datetime(2026, 11, 3, 8)
    with index_before(index, monkeypatch, 34) as con:
        con.execute("INSERT INTO send_runs (run_id, target, started, finished) VALUES "
                    "(1, 'T@h:1', $t, $t + INTERVAL 1 HOUR), (2, 'T@h:1', $t + INTERVAL 2 HOUR, NULL), "
                    "(3, 'T@h:1', $t + INTERVAL 3 HOUR, NULL)", {"t": t0})
        attempts = [(1, "stored", 100, 5), (1, "warning", 50, 6), (1, "failed", None, 7), (1, "retry", None, 8),
                    (2, "stored", 30, 70), (2, "failed", None, 90)]  # run 3: killed before its first attempt
        for i, (run_id, outcome, nbytes, minute) in enumerate(attempts):
            con.execute("INSERT INTO transfers (run_id, target, sop_instance_uid, path, started, finished, bytes, outcome, "
                        "sop_hash) VALUES ($r, 'T@h:1', $s, $s, $f, $f, $b, $o, sop_hash_of($s))",
                        {"r": run_id, "s": f"1.2.{i}", "f": t0 + dt.timedelta(minutes=minute), "b": nbytes,
                         "o": outcome})
    idxmod.open_index(str(index)).close()  # 0034
    assert rows(index, "SELECT run_id, recorded_stored, recorded_bytes, recorded_until FROM send_runs ORDER BY 1") == [
        (1, 2, 150, t0 + dt.timedelta(minutes=8)), (2, 1, 30, t0 + dt.timedelta(minutes=90)), (3, 0, 0, None)]
    assert_run_totals(index)
