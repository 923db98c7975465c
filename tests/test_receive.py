"""The built-in receiver as a target for the whole cycle: send, verify (find, commit, retrieve), reconcile."""

from __future__ import annotations

import json

from pacscopy.receive import Receiver

from .conftest import rows


def test_full_cycle_against_the_builtin_receiver(planned, tmp_path, cli) -> None:
    rx = Receiver(tmp_path / "rx", ae_title="RX")
    port = rx.start()
    t = f"RX@127.0.0.1:{port}"
    try:
        assert cli("send", "--target", t, "--index", planned, "-q").code == 0
        for mode in ("find", "retrieve", "commit"):
            r = cli("verify", "--target", t, "--index", planned, "--mode", mode, "-q", "--timeout", "10")
            assert r.code == 0, (mode, r.out, r.err)
            assert "verified:          15" in r.out
        r = cli("reconcile", "--target", t, "--index", planned, "--format", "json")
        assert r.code == 0, r.out
        data = json.loads(r.out)
        assert data["complete"] is True and {k: v for k, v in data["totals"].items() if v} == {"verified": 15}
        assert all(s["study_state"] == "ok" for s in data["studies"])
    finally:
        rx.stop()
    # a restarted receiver still knows what it holds
    rx2 = Receiver(tmp_path / "rx", ae_title="RX", port=port)
    rx2.start()
    try:
        assert len(rx2.catalogue) == 15
        (gone,) = rows(planned, "SELECT min(sop_instance_uid) FROM stored")[0]
        (tmp_path / "rx" / f"{gone}.dcm").unlink()
        r = cli("verify", "--target", t, "--index", planned, "--mode", "commit", "-q", "--timeout", "10")
        assert r.code == 1 and gone in r.out and "0x0112" in r.out
        # the earlier retrieve proved it was there: a later commitment failure disputes it
        r = cli("reconcile", "--target", t, "--index", planned)
        assert r.code == 1 and "disputed" in r.out and "NOT COMPLETE" in r.out
        # retrieved again: now the strongest evidence says it is gone
        r = cli("verify", "--target", t, "--index", planned, "--mode", "retrieve", "-q", "--timeout", "10")
        assert r.code == 1 and gone in r.out
        r = cli("reconcile", "--target", t, "--index", planned)
        assert r.code == 1 and "missing_on_target" in r.out and "disputed" not in r.out and "NOT COMPLETE" in r.out
    finally:
        rx2.stop()


def test_coercing_target_is_a_header_mismatch_with_equal_pixels(planned, tmp_path, cli) -> None:
    rx = Receiver(tmp_path / "rx", ae_title="RX", coerce={"InstitutionName": "RECEIVER HOSPITAL"})
    port = rx.start()
    t = f"RX@127.0.0.1:{port}"
    try:
        r = cli("send", "--target", t, "--index", planned, "-q")
        assert r.code == 0 and "warnings:  15" in r.out  # 0xB000 counts as stored, kept as a warning
        r = cli("verify", "--target", t, "--index", planned, "--mode", "retrieve", "-q")
        assert r.code == 1
    finally:
        rx.stop()
    got = rows(planned, "SELECT DISTINCT outcome, header_diff, pixels_equal FROM verification_latest")
    assert got == [("mismatch", ["InstitutionName"], True)]


def test_commitment_failure_reported_per_instance(planned, tmp_path, cli) -> None:
    (bad,) = rows(planned, "SELECT max(sop_instance_uid) FROM plan")[0]
    rx = Receiver(tmp_path / "rx", ae_title="RX", commit_fail={bad})
    port = rx.start()
    t = f"RX@127.0.0.1:{port}"
    try:
        assert cli("send", "--target", t, "--index", planned, "-q").code == 0
        r = cli("verify", "--target", t, "--index", planned, "--mode", "commit", "-q", "--timeout", "10")
        assert r.code == 1
    finally:
        rx.stop()
    got = rows(planned, "SELECT sop_instance_uid, outcome, detail FROM verification_latest WHERE outcome <> 'verified'")
    assert len(got) == 1 and got[0][0] == bad and got[0][1] == "failed" and "0x0110" in got[0][2]
