"""The built-in receiver as a target for the whole cycle: send, verify (find, commit, retrieve), reconcile."""

from __future__ import annotations

import json

from pacscopy.receive import Receiver

from .conftest import counts, ctrl_c_default, rows


def test_full_cycle_against_the_builtin_receiver(planned, tmp_path, cli) -> None:
    rx = Receiver(tmp_path / "rx", ae_title="RX")
    port = rx.start()
    t = f"RX@127.0.0.1:{port}"
    try:
        assert cli("send", "--target", t, "--index", planned, "-q").code == 0
        for mode in ("find", "retrieve", "commit"):
            r = cli("verify", "--target", t, "--index", planned, "--mode", mode, "-q", "--timeout", "10")
            assert r.code == 0, (mode, r.out, r.err)
            assert counts(r.out)["verified"] == 15, r.out
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
        assert r.code == 0 and counts(r.out)["warnings"] == 15, r.out  # 0xB000 counts as stored, kept as a warning
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


def test_receive_command_runs_until_ctrl_c_and_says_what_it_received(tmp_path) -> None:
    """The ``receive`` command: listens (port 0: any), answers C-ECHO, stops on Ctrl-C with a count, exit 0."""
    import re
    import signal
    import subprocess
    import sys
    import time

    from pacscopy.dicom.peer import Target
    from pacscopy.dicom.scu import echo

    proc = subprocess.Popen([sys.executable, "-m", "pacscopy", "receive", "--port", "0", "--storage",
                             str(tmp_path / "rx"), "--ae", "RXTEST"], stderr=subprocess.PIPE, text=True,
                                preexec_fn=ctrl_c_default)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.match(r"receiving as RXTEST@127\.0\.0\.1:(\d+) into .*rx \(Ctrl-C to stop\)$", line.strip())
        assert m, line
        assert echo(Target("RXTEST", "127.0.0.1", int(m.group(1))), "PACSCOPY", 10) == 0
        assert (tmp_path / "rx").is_dir()
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert err.strip() == "received 0 objects", err


def test_receive_command_says_in_one_line_what_it_cannot_do(tmp_path, cli) -> None:
    import socket

    (tmp_path / "file").write_text("x")
    r = cli("receive", "--port", "0", "--storage", tmp_path / "file" / "rx")
    assert r.code == 2 and r.err.startswith("pacscopy: error: cannot create ") and len(r.err.splitlines()) == 1, r.err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = cli("receive", "--port", str(port), "--storage", tmp_path / "rx")
    assert r.code == 2 and r.err.startswith(f"pacscopy: error: cannot listen on 127.0.0.1:{port}: "), r.err
    assert len(r.err.splitlines()) == 1, r.err
