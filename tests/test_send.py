"""Sending against real peers: pacscopy receive, DCMTK storescp, Orthanc, and faulty pynetdicom SCPs."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pacscopy.scan.parse import inspect_bytes
from pacscopy.receive import Receiver
from pacscopy.send.options import Window, parse_rate, wait_for_window
from pacscopy.testing.synth import make_corpus

from .conftest import assert_run_totals, rows
from .peers import faulty_scp, orthanc, orthanc_get, orthanc_json, storescp


def dataset_of(data: bytes) -> bytes:
    off = inspect_bytes(data).dataset_offset
    assert off is not None
    return data[off:]


def to_send(idx: Path) -> dict[str, tuple[bytes, int]]:
    """SOPInstanceUID -> (path bytes, dataset offset) of every planned instance."""
    return {s: (bytes(p), o) for s, p, o in rows(
        idx, "SELECT p.sop_instance_uid, file_path_bytes(f.path, f.path_bytes), f.dataset_offset FROM plan p JOIN files f USING (path) "
             "WHERE p.disposition = 'send'")}


def planned_corpus(tmp_path: Path, cli, files: int, size: int, name: str) -> Path:
    """A generated corpus of ``files`` healthy files of ~``size`` bytes, scanned and checked into index ``name``."""
    make_corpus(tmp_path / "corpus", files, size)
    idx = tmp_path / name
    assert cli("scan", tmp_path / "corpus", "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    return idx


def assert_all_stored_once(idx: Path, target: str, expect: set[str]) -> None:
    got = rows(idx, "SELECT sop_instance_uid, count(*) FROM transfers WHERE target = $t AND outcome IN "
                    "('stored', 'warning') GROUP BY 1", {"t": target})
    assert {s for s, _ in got} == expect
    assert all(n == 1 for _, n in got), "an instance recorded stored twice"


def test_send_to_pacscopy_receive(planned, tmp_path, cli) -> None:
    rx = Receiver(tmp_path / "rx")
    port = rx.start()
    try:
        target = f"PACSCOPY_RX@127.0.0.1:{port}"
        r = cli("send", "--target", target, "--index", planned, "-q", "--associations", "2")
        assert r.code == 0, r.out + r.err
        assert "stored:    15" in r.out
    finally:
        rx.stop()
    want = to_send(planned)
    assert len(want) == 15
    assert {p.stem for p in (tmp_path / "rx").glob("*.dcm")} == set(want)
    for sop, (path, off) in want.items():
        src = open(path, "rb").read()[off:]
        assert dataset_of((tmp_path / "rx" / f"{sop}.dcm").read_bytes()) == src, sop
    assert_all_stored_once(planned, target, set(want))
    # wire hash recorded = the dataset hash from the scan
    assert rows(planned, "SELECT count(*) FROM transfers t JOIN files f USING (path) WHERE t.wire_xxh3 <> f.dataset_xxh3") == [(0,)]
    # a second run has nothing to do
    r = cli("send", "--target", target, "--index", planned, "-q")
    assert r.code == 0 and "queued:    0" in r.out
    r = cli("status", "--target", target, "--index", planned)
    assert re.search(r"left:\s+0 ", r.out) and re.search(r"stored and current:\s+15 ", r.out), r.out


@pytest.mark.parametrize("max_pdu", [None, "4096"])
def test_send_to_storescp_bit_preserving(planned, tmp_path, cli, max_pdu) -> None:
    """Byte-equal datasets, also when storescp takes only 4 KB PDUs (each dataset in many fragments)."""
    with storescp(tmp_path, *(["--max-pdu", max_pdu] if max_pdu else [])) as peer:
        r = cli("send", "--target", peer.target, "--index", planned, "-q", "--associations", "1")
        assert r.code == 0, r.out + r.err
        assert peer.alive()
    files = [p for p in peer.storage.iterdir() if p.is_file()]
    want = to_send(planned)
    assert len(files) == len(want)
    by_sop = {}
    for f in files:
        data = f.read_bytes()
        ins = inspect_bytes(data)
        by_sop[ins.values["sop_instance_uid"]] = dataset_of(data)
    assert set(by_sop) == set(want)
    for sop, (path, off) in want.items():
        assert by_sop[sop] == open(path, "rb").read()[off:], sop


def test_send_to_orthanc(planned, tmp_path, cli) -> None:
    with orthanc(tmp_path) as peer:
        r = cli("send", "--target", peer.target, "--index", planned, "-q", "--associations", "4")
        assert r.code == 0, r.out + r.err
        ids = orthanc_json(peer, "/instances")
        want = to_send(planned)
        assert len(ids) == len(want)
        for oid in ids:
            tags = orthanc_json(peer, f"/instances/{oid}/simplified-tags")
            sop = tags["SOPInstanceUID"]
            path, off = want[sop]
            # Orthanc rewrites the file meta; the dataset bytes after it are the source's
            assert dataset_of(orthanc_get(peer, f"/instances/{oid}/file")) == open(path, "rb").read()[off:]


def test_permanent_rejection_stops_the_run_at_once_with_the_reason(planned, tmp_path, cli) -> None:
    """An A-ASSOCIATE-RJ "rejected-permanent" is a configuration problem, not an outage: no retries."""
    with faulty_scp(tmp_path, "reject") as peer:
        t0 = time.monotonic()
        r = cli("send", "--target", peer.target, "--index", planned, "-q", "--associations", "2")
        took = time.monotonic() - t0
    assert took < 15, took  # was 121 s of retries (--wait-for-target 120)
    assert r.code == 1
    assert "target_refused" in r.out and "target_down" not in r.out, r.out
    assert "calling AE title not recognised" in r.out and "--calling-ae" in r.out and "PACSCOPY" in r.out
    assert "not attempted: the target refuses pacscopy" in r.out
    assert rows(planned, "SELECT count(*) FROM transfers WHERE outcome IN ('stored','warning','retry')") == [(0,)]
    # the A-ASSOCIATE-RJ's result, source and reason are recorded (the faulty SCP knows only another calling AE)
    assert rows(planned, "SELECT DISTINCT outcome, error FROM transfers") == [
        ("failed", "association rejected (permanent, service user: calling AE title not recognised)")]
    assert rows(planned, "SELECT not_sent, outcome FROM send_runs") == [(15, "target_refused")]


def test_abort_mid_transfer_is_retried_and_nothing_lost(planned, tmp_path, cli) -> None:
    with faulty_scp(tmp_path, "abort3") as peer:
        r = cli("send", "--target", peer.target, "--index", planned, "-q", "--associations", "1")
        assert r.code == 0, r.out
        log = peer.logtext()
    want = to_send(planned)
    assert {p.stem for p in peer.storage.glob("*.dcm")} == set(want)
    retried = rows(planned, "SELECT sop_instance_uid, error FROM transfers WHERE outcome = 'retry'")
    assert len(retried) == 1 and retried[0][0] in log
    assert_all_stored_once(planned, peer.target, set(want))


def test_out_of_resources_then_success(planned, tmp_path, cli) -> None:
    with faulty_scp(tmp_path, "a700") as peer:
        r = cli("send", "--target", peer.target, "--index", planned, "-q", "--associations", "2")
        assert r.code == 0, r.out
    want = to_send(planned)
    got = rows(planned, "SELECT status_hex, outcome, count(*) FROM transfers GROUP BY ALL ORDER BY 1")
    assert got == [("0x0000", "stored", 15), ("0xA700", "retry", 15)]
    assert_all_stored_once(planned, peer.target, set(want))
    assert_run_totals(planned)  # the retries count for nothing


def test_the_same_failure_for_the_first_instances_stops_the_run(planned, tmp_path, cli) -> None:
    """0xC000 for every C-STORE: after STREAK instances in a row the run stops with that reason."""
    from pacscopy.send.worker import STREAK

    with faulty_scp(tmp_path, "c000") as peer:
        r = cli("send", "--target", peer.target, "--index", planned, "-q", "--associations", "1")
    assert r.code == 1
    assert "target_refused" in r.out and f"the first {STREAK} instances sent all failed the same way" in r.out
    assert "0xC000" in r.out and f"failed:    {STREAK}" in r.out, r.out
    got = rows(planned, "SELECT outcome, status, status_meaning, count(*) FROM transfers GROUP BY ALL")
    assert len(got) == 1 and got[0][0] == "failed" and got[0][1] == 0xC000 and got[0][3] == STREAK
    assert "cannot understand" in got[0][2].lower()
    assert rows(planned, "SELECT not_sent FROM send_runs") == [(15,)]
    assert_run_totals(planned)
    assert rows(planned, "SELECT recorded_stored, recorded_bytes FROM send_runs") == [(0, 0)]


def test_no_answer_is_not_success(planned, tmp_path, cli) -> None:
    with faulty_scp(tmp_path, "silent2") as peer:
        r = cli("send", "--target", peer.target, "--index", planned, "-q", "--associations", "1", "--timeout", "3")
        assert r.code == 0, r.out
    got = rows(planned, "SELECT outcome, status, error FROM transfers WHERE outcome = 'retry'")
    assert len(got) == 1 and got[0][1] is None and "no response" in got[0][2]
    assert_all_stored_once(planned, peer.target, set(to_send(planned)))


def test_kill_minus_9_then_resume(tmp_path, cli) -> None:
    idx = planned_corpus(tmp_path, cli, 300, 20_000, "k.duckdb")
    rx = Receiver(tmp_path / "rx")
    port = rx.start()
    target = f"PACSCOPY_RX@127.0.0.1:{port}"
    try:
        cmd = [sys.executable, "-m", "pacscopy", "send", "--target", target, "--index", str(idx), "-q",
               "--max-rate", "1MB/s", "--associations", "2"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and rx.received < 60:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)  # let workers notice their parent died
        first = rx.received
        assert 0 < first < 300
        r = subprocess.run(cmd[:-4], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        rx.stop()
    sops = {s for (s,) in rows(idx, "SELECT sop_instance_uid FROM plan WHERE disposition = 'send'")}
    assert {p.stem for p in (tmp_path / "rx").glob("*.dcm")} == sops
    assert_all_stored_once(idx, target, sops)
    runs = rows(idx, "SELECT run_id, finished IS NULL FROM send_runs ORDER BY run_id")
    assert runs == [(1, True), (2, False)]
    # the second run sent at most what was not recorded stored (plus nothing twice in the books)
    (second,) = rows(idx, "SELECT count(*) FROM transfers WHERE run_id = 2 AND outcome = 'stored'")[0]
    (firstbook,) = rows(idx, "SELECT count(*) FROM transfers WHERE run_id = 1 AND outcome = 'stored'")[0]
    assert firstbook + second == 300


def test_max_rate_caps_bytes_over_time(tmp_path, cli) -> None:
    idx = planned_corpus(tmp_path, cli, 40, 10_000, "r.duckdb")
    rx = Receiver(tmp_path / "rx")
    port = rx.start()
    try:
        r = cli("send", "--target", f"RX@127.0.0.1:{port}", "--index", idx, "-q", "--max-rate", "200KB/s",
                "--associations", "2")
        assert r.code == 0, r.out
    finally:
        rx.stop()
    got = rows(idx, "SELECT started, finished, bytes FROM transfers WHERE outcome = 'stored' ORDER BY started")
    assert len(got) == 40
    total = sum(b for _, _, b in got)
    span = (got[-1][0] - got[0][0]).total_seconds()
    # every byte but the last file's had to wait its turn: rate over the span <= the cap (+10% slack)
    assert (total - got[-1][2]) / span <= 200_000 * 1.1, (total, span)
    assert span >= (total - got[-1][2]) / 200_000 * 0.9


def test_window_waits_with_an_injected_clock() -> None:
    w = Window.parse("19:00-06:30")
    assert w.contains(dt.datetime(2026, 1, 1, 23, 0)) and w.contains(dt.datetime(2026, 1, 2, 6, 0))
    assert not w.contains(dt.datetime(2026, 1, 1, 12, 0))
    now = [dt.datetime(2026, 1, 1, 12, 0)]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += dt.timedelta(seconds=s)

    told: list[dt.datetime] = []
    waited = wait_for_window(w, clock=lambda: now[0], sleep=sleep, on_wait=told.append)
    assert told == [dt.datetime(2026, 1, 1, 19, 0)]
    assert now[0] >= dt.datetime(2026, 1, 1, 19, 0) and now[0] < dt.datetime(2026, 1, 1, 19, 2)
    assert waited == pytest.approx(7 * 3600, abs=120)
    # inside the window: no wait at all
    slept.clear()
    assert wait_for_window(w, clock=lambda: dt.datetime(2026, 1, 1, 20, 0), sleep=sleep) == 0 and slept == []


@pytest.mark.parametrize("text,value", [("40MB/s", 40_000_000), ("500KB/s", 500_000), ("1MiB/s", 1048576), ("1000", 1000)])
def test_parse_rate(text, value) -> None:
    assert parse_rate(text) == value


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--target", "nonsense"], "not AE@host:port"),
        (["--target", "X@127.0.0.1:104", "--max-rate", "fast"], "not a rate"),
        (["--target", "X@127.0.0.1:104", "--window", "7-8pm"], "not HH:MM-HH:MM"),
        (["--target", "X@127.0.0.1:104", "--where", "no_such_column = 1"], "--where"),
    ],
)
def test_send_bad_input(planned, cli, args, needle) -> None:
    before = rows(planned, "SELECT count(*) FROM transfers")
    r = cli("send", *args, "--index", planned)
    assert r.code == 2
    lines = [l for l in r.err.splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0], r.err
    assert rows(planned, "SELECT count(*) FROM transfers") == before


def test_unreachable_target_is_one_clear_outcome(planned, cli) -> None:
    from .peers import free_port

    r = cli("send", "--target", f"NOBODY@127.0.0.1:{free_port()}", "--index", planned, "-q",
            "--wait-for-target", "1", "--retries", "0")
    assert r.code == 1 and "target_down" in r.out and "Traceback" not in r.err


def test_dry_run_and_where_and_limit(planned, cli) -> None:
    r = cli("send", "--target", "X@127.0.0.1:104", "--index", planned, "--dry-run", "--where", "modality = 'MR'")
    assert r.code == 0 and "dry run: 6 instances" in r.out
    r = cli("send", "--target", "X@127.0.0.1:104", "--index", planned, "--dry-run", "--limit", "5")
    assert "dry run: 5 instances" in r.out
    assert rows(planned, "SELECT count(*) FROM transfers") == [(0,)]


def test_source_changed_since_scan_is_not_sent(planned, tmp_path, cli) -> None:
    want = to_send(planned)
    sop, (path, off) = sorted(want.items())[0]
    st = os.stat(path)
    data = bytearray(open(path, "rb").read())
    data[-10] ^= 0xFF  # same size, and the mtime is put back: only the hash can tell
    open(path, "wb").write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    rx = Receiver(tmp_path / "rx")
    port = rx.start()
    try:
        r = cli("send", "--target", f"RX@127.0.0.1:{port}", "--index", planned, "-q", "--associations", "1")
    finally:
        rx.stop()
    assert r.code == 1 and "source changed since scan (not sent): 1" in r.out
    assert not (tmp_path / "rx" / f"{sop}.dcm").exists()
    assert len(list((tmp_path / "rx").glob("*.dcm"))) == len(want) - 1
    assert rows(planned, "SELECT check_id, sop_instance_uid FROM findings WHERE check_id = 'source_changed'") == [("source_changed", sop)]


def test_patient_id_mapping_rewrites_on_the_way_out(planned, tmp_path, cli) -> None:
    import pydicom

    (old,) = rows(planned, "SELECT min(patient_id) FROM files WHERE status = 'ok'")[0]
    csvf = tmp_path / "map.csv"
    csvf.write_text(f"old_id,new_id,issuer\n{old},NEW-{old},HOSP-A\n")
    r = cli("map", "--csv", csvf, "--index", planned)
    assert r.code == 0 and "loaded 1" in r.out
    rx = Receiver(tmp_path / "rx")
    port = rx.start()
    try:
        r = cli("send", "--target", f"RX@127.0.0.1:{port}", "--index", planned, "-q")
        assert r.code == 0, r.out
    finally:
        rx.stop()
    mapped = {s for (s,) in rows(planned, "SELECT sop_instance_uid FROM files WHERE patient_id = $p", {"p": old})}
    assert mapped
    for f in (tmp_path / "rx").glob("*.dcm"):
        ds = pydicom.dcmread(f)
        if f.stem in mapped:
            assert ds.PatientID == f"NEW-{old}" and ds.IssuerOfPatientID == "HOSP-A"
            assert ds.OtherPatientIDsSequence[0].PatientID == old
        else:
            assert ds.PatientID != f"NEW-{old}"
    got = dict(rows(planned, "SELECT coalesce(rewritten, 'untouched'), count(*) FROM transfers GROUP BY 1"))
    assert got == {"patient_id_mapped": len(mapped), "untouched": 15 - len(mapped)}
    bad = tmp_path / "bad.csv"
    bad.write_text("old_id,new_id\nA,B\nC\n")
    r = cli("map", "--csv", bad, "--index", planned)
    assert r.code == 2 and "line 3" in r.err


def test_target_going_down_mid_run_is_waited_for_then_counted(tmp_path, cli) -> None:
    import threading

    idx = planned_corpus(tmp_path, cli, 120, 20_000, "d.duckdb")
    with storescp(tmp_path) as peer:  # no --fork: one process, killed outright
        def kill_when_some_arrived() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(list(peer.storage.iterdir())) < 20:
                time.sleep(0.05)
            peer.proc.kill()

        killer = threading.Thread(target=kill_when_some_arrived)
        killer.start()
        t0 = time.monotonic()
        r = cli("send", "--target", peer.target, "--index", idx, "-q", "--max-rate", "400KB/s",
                "--wait-for-target", "3", "--retries", "1", "--associations", "1")
        killer.join()
    assert time.monotonic() - t0 < 60
    assert r.code == 1 and "target_down" in r.out, r.out
    (stored,) = rows(idx, "SELECT count(*) FROM stored")[0]
    (left,) = rows(idx, "SELECT not_sent FROM send_runs")[0]
    assert 0 < stored < 120 and stored + left == 120
    assert f"stored:    {stored}" in r.out and f"not sent:  {left}" in r.out
    # the target is back on the same address: the next run sends exactly what is left
    with storescp(tmp_path, port=peer.port) as peer2:
        r = cli("send", "--target", peer2.target, "--index", idx, "-q")
    assert r.code == 0 and f"queued:    {left}" in r.out and f"stored:    {left}" in r.out
    assert rows(idx, "SELECT count(*) FROM stored") == [(120,)]


@pytest.mark.parametrize("sop,msg_id", [("1.2.3.45", 7), ("1.2.826.0.1.3680043.8.498.1", 65535)])
def test_hand_encoded_command_set_equals_pynetdicom(sop, msg_id) -> None:
    import io

    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.dsutils import encode

    from pacscopy.dicom.storelink import _store_command

    p = C_STORE()
    p.MessageID, p.Priority = msg_id, 2
    p.AffectedSOPClassUID, p.AffectedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", sop
    p.DataSet = io.BytesIO(b"x")
    m = C_STORE_RQ()
    m.primitive_to_message(p)
    m.command_set.CommandDataSetType = 0x0001
    m._set_command_group_length()
    assert _store_command("1.2.840.10008.5.1.4.1.1.2", sop, msg_id) == encode(m.command_set, True, True)


def test_status_meanings_are_pynetdicoms() -> None:
    """The sender names statuses without importing pynetdicom; the words must stay pynetdicom's."""
    from pynetdicom.status import GENERAL_STATUS, STORAGE_SERVICE_CLASS_STATUS, code_to_category

    from pacscopy.dicom.peer import status_meaning

    def theirs(code: int) -> str:
        for table in (STORAGE_SERVICE_CLASS_STATUS, GENERAL_STATUS):
            if code in table:
                return f"{table[code][0]}: {table[code][1]}"
        return code_to_category(code)

    for code in range(0x10000):
        assert status_meaning(code) == theirs(code), hex(code)
    assert status_meaning(None) == "no response"


def test_associate_rq_decodes_in_pynetdicom() -> None:
    """Our A-ASSOCIATE-RQ, read back by pynetdicom's PDU decoder."""
    from pynetdicom.pdu import A_ASSOCIATE_RQ

    from pacscopy.dicom.storelink import IMPLEMENTATION_CLASS_UID, OUR_MAX_PDU, associate_rq

    ctxs = [(1, "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1"), (3, "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.1.2")]
    raw = associate_rq("ORTHANC", "PACSCOPY", ctxs)
    pdu = A_ASSOCIATE_RQ()
    pdu.decode(raw)
    assert pdu.called_ae_title == "ORTHANC" and pdu.calling_ae_title == "PACSCOPY"
    assert pdu.application_context_name == "1.2.840.10008.3.1.1.1"
    got = [(c.context_id, c.abstract_syntax, list(c.transfer_syntax)) for c in pdu.presentation_context]
    assert got == [(cid, sop, [ts]) for cid, sop, ts in ctxs]
    user = {type(i).__name__: i for i in pdu.user_information.user_data}
    assert user["MaximumLengthSubItem"].maximum_length_received == OUR_MAX_PDU
    assert user["ImplementationClassUIDSubItem"].implementation_class_uid == IMPLEMENTATION_CLASS_UID
    assert len(raw) == pdu.encode().__len__() and raw == pdu.encode()


def test_association_the_target_closed_while_idle_is_reopened_without_a_failed_attempt(tmp_path, cli) -> None:
    """Orthanc closes an idle association after DicomScpTimeout; the sender notices before the next C-STORE."""
    idx = planned_corpus(tmp_path, cli, 3, 10_000, "idle.duckdb")
    (size,) = rows(idx, "SELECT max(size) FROM files")[0]
    with orthanc(tmp_path, extra={"DicomScpTimeout": 1}) as peer:
        # one association; each instance after the first waits ~2.5 s for the rate cap: longer than Orthanc's 1 s
        r = cli("send", "--target", peer.target, "--index", idx, "-q", "--associations", "1",
                "--max-rate", str(int(size / 2.5)))
        assert r.code == 0, r.out + r.err
        assert orthanc_json(peer, "/statistics")["CountInstances"] == 3
    assert rows(idx, "SELECT outcome, count(*) FROM transfers GROUP BY 1") == [("stored", 3)]
    spans = rows(idx, "SELECT started FROM transfers ORDER BY started")
    assert (spans[-1][0] - spans[0][0]).total_seconds() > 3  # the waits did happen
