"""Targets that refuse pacscopy: Orthanc configured not to know our AE, a called-AE check, a target that is gone."""

from __future__ import annotations

import time

from .conftest import rows
from .peers import free_port, orthanc, orthanc_json
from .test_send import planned_corpus


def test_orthanc_that_does_not_know_our_ae_stops_the_run_in_seconds(planned, tmp_path, cli) -> None:
    """DicomModalities without PACSCOPY and DicomAlwaysAllowStore false: Orthanc accepts the association and
    refuses every C-STORE. Each instance used to cost its 5 attempts and 15 s of backoff."""
    from pacscopy.send.worker import STREAK

    extra = {"DicomAlwaysAllowStore": False, "DicomModalities": {"other": ["OTHER", "127.0.0.1", 11112]}}
    with orthanc(tmp_path, extra=extra) as peer:
        t0 = time.monotonic()
        r = cli("send", "--target", peer.target, "--index", planned, "-q", "--associations", "1")
        took = time.monotonic() - t0
        assert orthanc_json(peer, "/statistics")["CountInstances"] == 0
    assert took < 20, took
    assert r.code == 1 and "target_refused" in r.out, r.out
    assert f"the first {STREAK} instances sent all failed the same way" in r.out
    assert "DicomModalities" in r.out and "'PACSCOPY'" in r.out
    (outcome, not_sent), = rows(planned, "SELECT outcome, not_sent FROM send_runs")
    assert (outcome, not_sent) == ("target_refused", 15)
    # one attempt per instance: nothing was retried against a target that refuses us
    assert rows(planned, "SELECT count(DISTINCT sop_instance_uid), count(*) FROM transfers") == [(STREAK, STREAK)]


def test_orthanc_called_ae_check_is_a_permanent_rejection(planned, tmp_path, cli) -> None:
    with orthanc(tmp_path) as peer:  # DicomCheckCalledAet: true
        wrong = f"NOT_ORTHANC@127.0.0.1:{peer.port}"
        t0 = time.monotonic()
        r = cli("send", "--target", wrong, "--index", planned, "-q")
        assert time.monotonic() - t0 < 15
        assert r.code == 1 and "target_refused" in r.out
        assert "called AE title not recognised" in r.out and "'NOT_ORTHANC'" in r.out, r.out
        p = cli("probe", "--target", wrong, "--index", planned)
        assert p.code == 2
        assert "called AE title not recognised" in p.err and "use the AE title the target is configured with" in p.err
        assert len([ln for ln in p.err.splitlines() if ln.strip()]) == 1
        assert peer.alive()


def test_wait_for_target_expiry_is_not_called_interrupted(tmp_path, cli) -> None:
    """Two workers: the one whose wait expires first stops the other, which must not turn it into 'interrupted'."""
    idx = planned_corpus(tmp_path, cli, 40, 2_000, "w.duckdb")  # > 32 instances: two batches, two workers
    r = cli("send", "--target", f"NOBODY@127.0.0.1:{free_port()}", "--index", idx, "-q", "--associations", "2",
            "--wait-for-target", "1", "--retries", "0")
    assert r.code == 1
    assert ": target_down" in r.out and "interrupted" not in r.out, r.out
    assert "--wait-for-target expired after 1 s" in r.out
    assert rows(idx, "SELECT outcome, not_sent FROM send_runs") == [("target_down", 40)]
