"""Living data (issue 14): delta runs against a source that changes after it was sent.

Against real peers: pacscopy's own receiver (it overwrites a second copy of a known
SOPInstanceUID) and Orthanc twice (OverwriteInstances true: updates land; the default: the
target answers success and keeps its old copy, which only a retrieve-back shows).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from pacscopy.receive import Receiver
from pacscopy.testing.synth import make_archive

from .conftest import rows
from .peers import orthanc, orthanc_json

STATUS_LINES = ("stored and current", "verify problems", "updates pending", "stale on target", "deleted in source",
                "awaiting decision", "failed", "left", "excluded")


def status(cli, idx: Path, target: str) -> dict[str, int]:
    """`pacscopy status` figures; asserts they add up to the plan and none is negative."""
    r = cli("status", "--target", target, "--index", idx)
    assert r.code == 0, r.err
    m = re.search(r"(\d+) instances in the plan", r.out)
    assert m, r.out
    got = {name: int(re.search(rf"  {name}:\s+(-?\d+)", r.out).group(1)) for name in STATUS_LINES}  # type: ignore[union-attr]
    assert all(v >= 0 for v in got.values()), r.out
    assert sum(got.values()) == int(m.group(1)), r.out
    (planned,) = rows(idx, "SELECT count(*) FROM plan")[0]
    assert int(m.group(1)) == planned
    return got


def totals(cli, idx: Path, target: str, *extra: str) -> tuple[int, dict]:
    r = cli("reconcile", "--target", target, "--index", idx, "--format", "json", *extra)
    data = json.loads(r.out)
    (planned,) = rows(idx, "SELECT count(*) FROM plan")[0]
    assert sum(data["totals"].values()) == data["instances"] == planned
    return r.code, data


def edit(path: Path, **changes: object) -> None:
    ds = pydicom.dcmread(path, force=True)  # raw datasets without meta too
    for k, v in changes.items():
        setattr(ds, k, v)
    ds.save_as(path)


def files_of(root: Path, idx: Path, sql_where: str, params: dict | None = None) -> list[Path]:
    return [Path(os.fsdecode(bytes(p))) for (p,) in
            rows(idx, f"SELECT file_path_bytes(path, path_bytes) FROM files WHERE {sql_where} ORDER BY path",
                 params)]


def sop_of(idx: Path, path: Path) -> str:
    return rows(idx, "SELECT sop_instance_uid FROM files WHERE file_path_bytes(path, path_bytes) = $p", {"p": os.fsencode(path)})[0][0]


@pytest.fixture
def source(tmp_path: Path, cli):
    """A small healthy archive (2 patients), scanned and checked."""
    root = tmp_path / "src"
    make_archive(root, patients=2, studies_per_patient=1, series_per_study=2, instances_per_series=3,
                 defects=False, conflicts=False, specials=False)
    idx = tmp_path / "living.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    return root, idx


@pytest.fixture
def receiver(tmp_path: Path):
    rx = Receiver(tmp_path / "rx", ae_title="RX")
    port = rx.start()
    try:
        yield f"RX@127.0.0.1:{port}", tmp_path / "rx"
    finally:
        rx.stop()


def test_delta_cycle_against_pacscopy_receive(source, receiver, cli, tmp_path) -> None:
    root, idx = source
    target, storage = receiver
    (n,) = rows(idx, "SELECT count(*) FROM plan WHERE disposition = 'send'")[0]
    assert cli("send", "--target", target, "--index", idx, "-q").code == 0
    assert cli("verify", "--target", target, "--index", idx, "-q").code == 0
    assert status(cli, idx, target)["stored and current"] == n
    code, data = totals(cli, idx, target, "--no-query")
    assert code == 0 and data["complete"] and data["totals"].get("verified", 0) == n

    # the source moves on: one patient's name corrected in all their files, one StudyDescription
    # revised, one file deleted, a new study imported
    pids = [p for (p,) in rows(idx, "SELECT DISTINCT patient_id FROM files ORDER BY 1")]
    renamed = files_of(root, idx, "patient_id = $p", {"p": pids[0]})
    for p in renamed:
        edit(p, PatientName="CORRECTED^NAME")
    others = files_of(root, idx, "patient_id = $p", {"p": pids[1]})
    revised, deleted = others[0], others[1]
    edit(revised, StudyDescription="REVISED REPORT")
    deleted_sop = sop_of(idx, deleted)
    deleted.unlink()
    ds = pydicom.dcmread(others[2], force=True)
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid(), generate_uid()
    if "MediaStorageSOPInstanceUID" in getattr(ds, "file_meta", {}):
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    (root / "imported").mkdir()
    ds.save_as(root / "imported" / "cd_import.dcm")

    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    updates = len(renamed) + 1
    st = status(cli, idx, target)
    assert st["updates pending"] == updates and st["deleted in source"] == 1 and st["left"] == 1
    assert st["awaiting decision"] == 0  # a consistent correction is an update, not an ID conflict
    code, data = totals(cli, idx, target, "--no-query")
    assert code == 1 and not data["complete"]
    assert data["totals"].get("update_pending", 0) == updates and data["totals"].get("deleted_in_source", 0) == 1
    assert data["totals"].get("not_sent", 0) == 1
    why = {p["sop_instance_uid"]: p["reason"] for p in data["problems"]}
    assert "PatientName" in why[sop_of(idx, renamed[0])]
    rev_sop = sop_of(idx, revised)
    assert "StudyDescription" in why[rev_sop] and "PatientName" not in why[rev_sop]
    assert "first seen missing" in why[deleted_sop]

    r = cli("send", "--target", target, "--index", idx, "--dry-run")
    assert r.code == 0 and f"{updates + 1} instances ({updates} updates)" in r.out, r.out
    r = cli("send", "--target", target, "--index", idx, "-q", "--no-updates", "--dry-run")
    assert "1 instances (0 updates)" in r.out
    r = cli("send", "--target", target, "--index", idx, "-q", "--no-prove")  # verify proves them below
    assert r.code == 0 and f"{updates} of them updates" in r.out and "retrieved back" not in r.out, r.out
    assert rows(idx, "SELECT count(*) FROM transfers WHERE is_update AND outcome = 'stored'") == [(updates,)]
    # the receiver overwrote its copies
    got = pydicom.dcmread(storage / f"{rev_sop}.dcm")
    assert got.StudyDescription == "REVISED REPORT"

    st = status(cli, idx, target)
    assert st["updates pending"] == 0 and st["left"] == 0 and st["stored and current"] == n
    code, data = totals(cli, idx, target, "--no-query")
    assert data["totals"].get("stored_unverified", 0) == updates + 1  # an update is not proven by its success status
    # verify (find) retrieves every update back on its own; the deleted instance is not read
    r = cli("verify", "--target", target, "--index", idx, "-q")
    assert r.code == 0, r.out + r.err
    assert f"updates retrieved back: {updates}; verified {updates}" in r.out
    assert rows(idx, "SELECT count(*) FROM verifications WHERE sop_instance_uid = $s AND verified_at > "
                     "(SELECT max(finished) FROM transfers)", {"s": deleted_sop}) == [(0,)]
    code, data = totals(cli, idx, target, "--no-query")
    assert code == 1 and data["totals"].get("deleted_in_source", 0) == 1 and data["totals"].get("verified", 0) == n

    # keep/remove are only for instances deleted in the source
    r = cli("decide", "--sop", rev_sop, "--action", "keep", "--note", "x", "--index", idx)
    assert r.code == 2 and r.err.count("\n") == 1 and "not deleted in the source" in r.err
    r = cli("decide", "--sop", deleted_sop, "--action", "keep", "--note", "RFC-12: keep on the new PACS",
            "--index", idx)
    assert r.code == 0
    st = status(cli, idx, target)
    assert st["deleted in source"] == 0 and st["excluded"] == 1
    code, data = totals(cli, idx, target, "--no-query")
    assert code == 0 and data["complete"] and data["totals"].get("excluded_decision", 0) == 1


def test_inconsistent_correction_is_held_awaiting_decision(source, receiver, cli) -> None:
    """One file of a patient corrected, the others not: contradictory copies hold; status never negative."""
    root, idx = source
    target, _ = receiver
    assert cli("send", "--target", target, "--index", idx, "-q").code == 0
    (pid,) = rows(idx, "SELECT min(patient_id) FROM files")[0]
    mine = files_of(root, idx, "patient_id = $p", {"p": pid})
    edit(mine[0], PatientName="ONLY^ONE")
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    st = status(cli, idx, target)
    assert st["awaiting decision"] == len(mine) and st["updates pending"] == 0
    code, data = totals(cli, idx, target, "--no-query")
    assert code == 1 and data["totals"].get("awaiting_decision", 0) == len(mine)
    assert data["totals"].get("excluded_held", 0) == 0


def test_patient_map_after_send_turns_stored_instances_into_updates(source, receiver, cli, tmp_path) -> None:
    root, idx = source
    target, storage = receiver
    assert cli("send", "--target", target, "--index", idx, "-q").code == 0
    (pid,) = rows(idx, "SELECT min(patient_id) FROM files")[0]
    mine = {s for (s,) in rows(idx, "SELECT sop_instance_uid FROM files WHERE patient_id = $p", {"p": pid})}
    csv = tmp_path / "map.csv"
    csv.write_text(f"old_id,new_id\n{pid},NEW-{pid}\n")
    assert cli("map", "--csv", csv, "--index", idx).code == 0
    code, data = totals(cli, idx, target, "--no-query")
    assert data["totals"].get("update_pending", 0) == len(mine)
    assert all(f"PatientID {pid} -> NEW-{pid}" in p["reason"] for p in data["problems"]
               if p["final_state"] == "update_pending")
    r = cli("send", "--target", target, "--index", idx, "-q")
    assert r.code == 0 and f"{len(mine)} of them updates" in r.out
    assert {pydicom.dcmread(storage / f"{s}.dcm").PatientID for s in mine} == {f"NEW-{pid}"}
    assert cli("verify", "--target", target, "--index", idx, "--mode", "retrieve", "-q").code == 0
    code, data = totals(cli, idx, target, "--no-query")
    assert code == 0 and data["complete"]


def test_delta_bad_input(source, receiver, cli, tmp_path) -> None:
    root, idx = source
    target, _ = receiver
    before = rows(idx, "SELECT count(*) FROM transfers")
    r = cli("send", "--target", target, "--index", idx, "--updates-only")
    assert r.code == 2 and r.err.startswith("pacscopy: error: nothing was ever stored on") and r.err.count("\n") == 1
    r = cli("send", "--target", target, "--index", idx, "--updates-only", "--no-updates")
    assert r.code == 2 and r.err.count("\n") == 1
    assert rows(idx, "SELECT count(*) FROM transfers") == before
    (sop,) = rows(idx, "SELECT min(sop_instance_uid) FROM plan")[0]
    r = cli("decide", "--sop", sop, "--action", "remove", "--note", "x", "--index", idx)
    assert r.code == 2 and r.err.count("\n") == 1 and "keep and remove are for instances deleted" in r.err
    assert rows(idx, "SELECT count(*) FROM decisions") == [(0,)]


@pytest.mark.parametrize("overwrite", [True, False], ids=["OverwriteInstances", "default"])
def test_updates_against_orthanc(source, cli, tmp_path, overwrite) -> None:
    """Orthanc answers success to an update either way; only with OverwriteInstances does it take it."""
    root, idx = source
    with orthanc(tmp_path, extra={"OverwriteInstances": overwrite}) as peer:
        assert cli("send", "--target", peer.target, "--index", idx, "-q").code == 0
        assert cli("verify", "--target", peer.target, "--index", idx, "-q").code == 0
        changed = files_of(root, idx, "true")[:2]
        for p in changed:
            edit(p, StudyDescription="REVISED")
        assert cli("scan", root, "--index", idx, "-q").code == 0
        assert cli("check", "--index", idx, "-q").code == 0
        # the send retrieves its updates back right away: a success status is no proof
        r = cli("send", "--target", peer.target, "--index", idx, "-q", "--updates-only")
        assert "stored:    2" in r.out and "2 of them updates" in r.out, r.out
        assert ("updates retrieved back: 2; verified 2, kept old copy (stale) 0" if overwrite else
                "updates retrieved back: 2; verified 0, kept old copy (stale) 2") in r.out, r.out + r.err
        assert rows(idx, "SELECT count(*) FROM verifications WHERE mode = 'retrieve'") == [(2,)]
        code, data = totals(cli, idx, peer.target)  # no verify run in between
        st = status(cli, idx, peer.target)
        # nothing is left for verify to retrieve back
        v = cli("verify", "--target", peer.target, "--index", idx, "-q")
        assert "updates retrieved back" not in v.out, v.out
    if overwrite:
        assert r.code == 0 and code == 0 and data["complete"] and st["stale on target"] == 0
    else:
        assert r.code == 1 and "kept its old copy" in r.out and code == 1 and not data["complete"]
        assert data["totals"].get("stale_on_target", 0) == 2 and st["stale on target"] == 2
        stale = [p for p in data["problems"] if p["final_state"] == "stale_on_target"]
        assert all("kept its old copy" in p["reason"] and "StudyDescription" in p["reason"]
                   and "OverwriteInstances" in p["reason"] for p in stale)


def test_holds_await_a_decision_and_the_demo_review_answers_them(scanned, tmp_path, cli) -> None:
    """A hold is a question: reconcile is not complete until a decision answers it (scripts/demo's review)."""
    import shutil

    idx = tmp_path / "held.duckdb"
    shutil.copy(scanned, idx)
    assert cli("check", "--index", idx, "-q").code == 0
    (held,) = rows(idx, "SELECT count(*) FROM plan WHERE disposition = 'hold'")[0]
    assert held > 0
    target = "NOWHERE@127.0.0.1:9"
    code, data = totals(cli, idx, target, "--no-query")
    assert code == 1 and not data["complete"]
    assert data["totals"].get("awaiting_decision", 0) == held and data["totals"].get("excluded_held", 0) == 0
    st = status(cli, idx, target)
    assert st["awaiting decision"] == held
    review = Path(__file__).resolve().parent.parent / "scripts" / "demo-review.sql"
    r = cli("query", "-f", review, "--index", idx, "--format", "csv")
    assert r.code == 0
    (tmp_path / "decisions.csv").write_text(r.out)
    r = cli("decide", "--csv", tmp_path / "decisions.csv", "--index", idx)
    assert r.code == 0 and f"recorded {held} decisions" in r.out
    code, data = totals(cli, idx, target, "--no-query")
    assert data["totals"].get("awaiting_decision", 0) == 0
    assert data["totals"].get("excluded_held", 0) + data["totals"].get("excluded_decision", 0) > 0


def test_patient_map_update_on_orthanc_lands_under_the_new_patient(source, cli, tmp_path) -> None:
    """A PatientID map loaded after the send: Orthanc (default settings) files the update under the
    new patient (its identity includes the PatientID), so retrieve-back verifies it, and the old
    patient's copy stays there beside it: pacscopy never deletes, the target's administrator does."""
    root, idx = source
    (pid,) = rows(idx, "SELECT min(patient_id) FROM files")[0]
    (n,) = rows(idx, "SELECT count(DISTINCT sop_instance_uid) FROM files WHERE patient_id = $p", {"p": pid})[0]
    csv = tmp_path / "map.csv"
    csv.write_text(f"{pid},MERGED-{pid}\n")
    with orthanc(tmp_path) as peer:
        assert cli("send", "--target", peer.target, "--index", idx, "-q").code == 0
        patients = len(orthanc_json(peer, "/patients"))  # type: ignore[arg-type]
        assert cli("map", "--csv", csv, "--index", idx).code == 0
        r = cli("send", "--target", peer.target, "--index", idx, "-q")
        assert r.code == 0 and f"{n} of them updates" in r.out
        assert f"updates retrieved back: {n}; verified {n}" in r.out, r.out + r.err
        assert len(orthanc_json(peer, "/patients")) == patients + 1  # type: ignore[arg-type]
        r = cli("verify", "--target", peer.target, "--index", idx, "-q")  # the instances sent first
        assert r.code == 0 and "updates retrieved back" not in r.out, r.out + r.err
        code, data = totals(cli, idx, peer.target, "--no-query")
    assert code == 0 and data["complete"]


def test_kill_minus_9_during_a_delta_send_then_resume(tmp_path, cli) -> None:
    """A delta send killed outright: the next run sends only the updates not recorded stored."""
    import signal
    import subprocess
    import sys
    import time

    from pacscopy.testing.synth import make_corpus

    files = make_corpus(tmp_path / "corpus", 200, 20_000)
    idx = tmp_path / "k.duckdb"
    assert cli("scan", tmp_path / "corpus", "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    rx = Receiver(tmp_path / "rx")
    port = rx.start()
    target = f"PACSCOPY_RX@127.0.0.1:{port}"
    try:
        assert cli("send", "--target", target, "--index", idx, "-q").code == 0
        for p in files[:150]:
            edit(p, StudyDescription="REVISED")
        assert cli("scan", tmp_path / "corpus", "--index", idx, "-q").code == 0
        assert cli("check", "--index", idx, "-q").code == 0
        before = rx.received
        cmd = [sys.executable, "-m", "pacscopy", "send", "--target", target, "--index", str(idx), "-q",
               "--max-rate", "200KB/s", "--associations", "2"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and rx.received < before + 30:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(0.5)
        assert before < rx.received < before + 150
        st = status(cli, idx, target)
        assert 0 < st["updates pending"] < 150  # what the killed run recorded is no longer pending
        r = subprocess.run(cmd[:-4], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        rx.stop()
    st = status(cli, idx, target)
    assert st["updates pending"] == 0 and st["stored and current"] == 200
    (updates,) = rows(idx, "SELECT count(DISTINCT sop_instance_uid) FROM transfers WHERE is_update AND "
                           "outcome = 'stored'")[0]
    assert updates == 150
    got = {pydicom.dcmread(p).StudyDescription for p in (tmp_path / "rx").glob("*.dcm")}
    assert got == {"REVISED", pydicom.dcmread(files[-1]).StudyDescription} and len(got) == 2


def _manifest(path: Path, idx: Path, corrections: dict[str, dict[str, str]]) -> Path:
    """The old PACS's database export: every instance of the index, with corrected values where given."""
    cols = ["patient_name", "patient_sex"]
    lines = ["sop_instance_uid," + ",".join(cols)]
    for (sop,) in rows(idx, "SELECT DISTINCT sop_instance_uid FROM files ORDER BY 1"):
        lines.append(",".join([sop] + [corrections.get(sop, {}).get(c, "") for c in cols]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_manifest_correction_after_send_is_an_update(source, receiver, cli, tmp_path) -> None:
    """The old PACS's database corrects a patient's name after the instances were sent: each is planned
    as an update naming the attributes and the database as the cause, sent with the database's values,
    proven; a second load that corrects one more attribute re-plans only that instance."""
    root, idx = source
    target, storage = receiver
    (n,) = rows(idx, "SELECT count(*) FROM plan WHERE disposition = 'send'")[0]
    assert cli("send", "--target", target, "--index", idx, "-q").code == 0
    # a manifest that corrects nothing plans no update
    assert cli("manifest", "load", _manifest(tmp_path / "m0.csv", idx, {}), "--index", idx).code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    assert status(cli, idx, target)["updates pending"] == 0

    (pid,) = rows(idx, "SELECT min(patient_id) FROM files")[0]
    mine = [s for (s,) in rows(idx, "SELECT sop_instance_uid FROM files WHERE patient_id = $p ORDER BY 1", {"p": pid})]
    fixed = {s: {"patient_name": "DATABASE^CORRECTED"} for s in mine}
    assert cli("manifest", "load", _manifest(tmp_path / "m1.csv", idx, fixed), "--index", idx).code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    st = status(cli, idx, target)
    assert st["updates pending"] == len(mine) and st["awaiting decision"] == 0, st
    code, data = totals(cli, idx, target, "--no-query")
    assert code == 1 and data["totals"].get("update_pending", 0) == len(mine)
    why = {p["sop_instance_uid"]: p["reason"] for p in data["problems"] if p["final_state"] == "update_pending"}
    assert set(why) == set(mine)
    assert all("changed since stored: PatientName (the old PACS's database: pacscopy manifest)" in w
               for w in why.values()), why
    r = cli("send", "--target", target, "--index", idx, "--dry-run")
    assert r.code == 0 and f"{len(mine)} instances ({len(mine)} updates)" in r.out, r.out
    r = cli("send", "--target", target, "--index", idx, "-q")
    assert r.code == 0 and f"{len(mine)} of them updates" in r.out, r.out + r.err
    assert {str(pydicom.dcmread(storage / f"{s}.dcm").PatientName) for s in mine} == {"DATABASE^CORRECTED"}
    assert rows(idx, "SELECT DISTINCT rewritten FROM transfers WHERE is_update") == [("manifest#2:PatientName",)]
    assert status(cli, idx, target)["updates pending"] == 0

    # a later export corrects one more attribute of one instance: only that one is due, for that reason
    fixed[mine[0]]["patient_sex"] = "F"
    assert cli("manifest", "load", _manifest(tmp_path / "m2.csv", idx, fixed), "--index", idx).code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    code, data = totals(cli, idx, target, "--no-query")
    due = {p["sop_instance_uid"]: p["reason"] for p in data["problems"] if p["final_state"] == "update_pending"}
    assert list(due) == [mine[0]] and "PatientSex (the old PACS's database" in due[mine[0]]
    assert "PatientName" not in due[mine[0]]
    assert cli("send", "--target", target, "--index", idx, "-q").code == 0
    assert pydicom.dcmread(storage / f"{mine[0]}.dcm").PatientSex == "F"
    assert cli("verify", "--target", target, "--index", idx, "--mode", "retrieve", "-q").code == 0
    code, data = totals(cli, idx, target, "--no-query")
    assert code == 0 and data["complete"] and data["totals"].get("verified", 0) == n, data["totals"]


def test_update_to_a_target_without_c_get_is_left_for_verify(source, cli, tmp_path) -> None:
    """storescp stores but cannot be retrieved from: the send says its updates are not proven yet (one
    line on stderr), exits 0 as a normal store would, and the updates stay unproven (stored_unverified)."""
    from .peers import storescp

    root, idx = source
    with storescp(tmp_path) as peer:
        assert cli("send", "--target", peer.target, "--index", idx, "-q").code == 0
        changed = files_of(root, idx, "true")[:1]
        edit(changed[0], StudyDescription="REVISED")
        assert cli("scan", root, "--index", idx, "-q").code == 0
        assert cli("check", "--index", idx, "-q").code == 0
        r = cli("send", "--target", peer.target, "--index", idx, "-q", "--timeout", "10")
    assert r.code == 0 and "1 of them updates" in r.out, r.out + r.err
    assert "1 updates not proven yet (pacscopy verify retrieves them back; give --port" in r.err, r.err
    assert "C-GET" in r.err and r.err.count("\n") == 1
    code, data = totals(cli, idx, peer.target, "--no-query")
    why = {p["sop_instance_uid"]: p["reason"] for p in data["problems"]}
    assert data["totals"].get("stored_unverified", 0) == len(why)
    assert "update stored, not proven until retrieved back" in why[sop_of(idx, changed[0])]


def test_patient_merge_loaded_with_map_after_send(source, receiver, cli, tmp_path) -> None:
    """Two patients merged in the old PACS after the send (map --merge, the old ID onto the surviving
    patient's): the merged patient's stored instances become updates naming the PatientID change, the
    survivor's stay current; after the send every copy on the target carries the surviving ID and the
    figures add up at every step."""
    root, idx = source
    target, storage = receiver
    (n,) = rows(idx, "SELECT count(*) FROM plan WHERE disposition = 'send'")[0]
    assert cli("send", "--target", target, "--index", idx, "-q").code == 0
    old, survivor = [p for (p,) in rows(idx, "SELECT DISTINCT patient_id FROM files ORDER BY 1")]
    merged = {s for (s,) in rows(idx, "SELECT sop_instance_uid FROM files WHERE patient_id = $p", {"p": old})}
    csv = tmp_path / "merge.csv"
    csv.write_text(f"{old},{survivor}\n")
    r = cli("map", "--csv", csv, "--index", idx)
    assert r.code == 2 and "--merge" in r.err  # a merge must be meant
    assert status(cli, idx, target)["updates pending"] == 0
    assert cli("map", "--csv", csv, "--merge", "--index", idx).code == 0
    st = status(cli, idx, target)
    assert st["updates pending"] == len(merged) and st["stored and current"] == n - len(merged), st
    code, data = totals(cli, idx, target, "--no-query")
    due = {p["sop_instance_uid"]: p["reason"] for p in data["problems"] if p["final_state"] == "update_pending"}
    assert set(due) == merged and all(f"PatientID {old} -> {survivor} (pacscopy map)" in w for w in due.values())
    r = cli("send", "--target", target, "--index", idx, "-q")
    assert r.code == 0 and f"{len(merged)} of them updates" in r.out, r.out + r.err
    assert f"updates retrieved back: {len(merged)}; verified {len(merged)}" in r.out, r.out
    assert {pydicom.dcmread(p).PatientID for p in storage.glob("*.dcm")} == {survivor}
    st = status(cli, idx, target)
    assert st["updates pending"] == 0 and st["stored and current"] == n


def test_update_reason_names_attributes_the_index_does_not_keep(source, receiver, cli) -> None:
    """An update's reason names every attribute that changed (the scan's per-attribute digests),
    not only the indexed ones: a revised SeriesDescription, a corrected ReferringPhysicianName, a
    private tag, the pixel data."""
    root, idx = source
    target, storage = receiver
    assert cli("send", "--target", target, "--index", idx, "-q").code == 0
    a, b, c = files_of(root, idx, "status = 'ok' AND sop_instance_uid IS NOT NULL")[:3]
    ds = pydicom.dcmread(a, force=True)
    ds.SeriesDescription = "SERIES BEFORE"
    ds.ReferringPhysicianName = "DR^BEFORE"
    ds.save_as(a)
    # a rewritten copy before it was sent: scanned and sent as the stored content
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    assert cli("send", "--target", target, "--index", idx, "-q").code == 0
    ds = pydicom.dcmread(a, force=True)
    ds.SeriesDescription = "SERIES REVISED"
    ds.ReferringPhysicianName = "DR^CORRECTED"
    ds.save_as(a)
    ds = pydicom.dcmread(b, force=True)
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "LO", "vendor value")
    ds.save_as(b)
    ds = pydicom.dcmread(c, force=True)
    px = bytearray(ds.PixelData)
    px[0] ^= 0xFF
    ds.PixelData = bytes(px)
    ds.save_as(c)
    sops = {p: sop_of(idx, p) for p in (a, b, c)}
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    st = status(cli, idx, target)
    assert st["updates pending"] == 3
    code, data = totals(cli, idx, target, "--no-query")
    why = {p["sop_instance_uid"]: p["reason"] for p in data["problems"] if p["final_state"] == "update_pending"}
    said = {s: w.split(";")[0] for s, w in why.items()}
    assert said[sops[a]] == "changed since stored: ReferringPhysicianName, SeriesDescription", why
    assert said[sops[b]] == ("changed since stored: (0009,0010) private creator (added), "
                             "(0009,xxxx) private data (added)"), why
    assert said[sops[c]] == "changed since stored: PixelData", why
    r = cli("send", "--target", target, "--index", idx, "--dry-run")
    assert r.code == 0 and "ReferringPhysicianName, SeriesDescription" in r.out, r.out
    # sent, and retrieved back: the reason of a later change names only what changed since
    assert cli("send", "--target", target, "--index", idx, "-q").code == 0
    ds = pydicom.dcmread(a, force=True)
    ds.SeriesDescription = "SERIES REVISED AGAIN"
    ds.save_as(a)
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    code, data = totals(cli, idx, target, "--no-query")
    why = {p["sop_instance_uid"]: p["reason"] for p in data["problems"] if p["final_state"] == "update_pending"}
    assert {s: w.split(";")[0] for s, w in why.items()} == {sops[a]: "changed since stored: SeriesDescription"}
    # a corrected copy written under a new path, the old file gone: compared at the end of the scan
    d = files_of(root, idx, "status = 'ok' AND sop_instance_uid IS NOT NULL")[3]
    sop_d = sop_of(idx, d)
    ds = pydicom.dcmread(d, force=True)
    ds.InstitutionName = "RE-EXPORTED"
    (root / "reexport").mkdir()
    ds.save_as(root / "reexport" / "d.dcm")
    d.unlink()
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    code, data = totals(cli, idx, target, "--no-query")
    why = {p["sop_instance_uid"]: p["reason"] for p in data["problems"] if p["final_state"] == "update_pending"}
    assert why[sop_d].split(";")[0] == "changed since stored: InstitutionName", why
    # the digests take little room: an id of the attribute list and 2 bytes per attribute
    ((n, dlen),) = rows(idx, "SELECT count(*), max(octet_length(attr_digest)) FROM file_digests")
    # one digest per sound file (a vanished file keeps its own: it may be what a target holds)
    assert rows(idx, "SELECT count(*) FROM files WHERE status IN ('ok', 'missing')") == [(n,)]
    ((lists, tags),) = rows(idx, "SELECT count(*), max(octet_length(tags)) FROM attr_tagsets")
    assert dlen == 8 + tags // 2 and lists < n


def test_a_changed_map_turns_what_the_earlier_map_sent_into_updates(source, receiver, cli, tmp_path) -> None:
    """A PatientID mapping loaded, sent, then changed (the hospital renumbered again): the instances
    sent under the first new ID are updates to the second, and the figures add up at each step."""
    root, idx = source
    target, storage = receiver
    (pid,) = rows(idx, "SELECT min(patient_id) FROM files")[0]
    mine = {s for (s,) in rows(idx, "SELECT sop_instance_uid FROM files WHERE patient_id = $p", {"p": pid})}
    first, second = tmp_path / "map1.csv", tmp_path / "map2.csv"
    first.write_text(f"{pid},FIRST-{pid}\n")
    second.write_text(f"{pid},SECOND-{pid}\n")
    assert cli("map", "--csv", first, "--index", idx).code == 0
    assert cli("send", "--target", target, "--index", idx, "-q").code == 0
    assert status(cli, idx, target)["updates pending"] == 0
    r = cli("map", "--csv", second, "--index", idx)
    assert r.code == 0, r.err
    st = status(cli, idx, target)
    assert st["updates pending"] == len(mine), st
    code, data = totals(cli, idx, target, "--no-query")
    due = {p["sop_instance_uid"]: p["reason"] for p in data["problems"] if p["final_state"] == "update_pending"}
    assert set(due) == mine
    assert all(f"PatientID FIRST-{pid} -> SECOND-{pid} (pacscopy map)" in w for w in due.values()), due
    r = cli("send", "--target", target, "--index", idx, "-q")
    assert r.code == 0 and f"{len(mine)} of them updates" in r.out, r.out + r.err
    assert {pydicom.dcmread(storage / f"{s}.dcm").PatientID for s in mine} == {f"SECOND-{pid}"}
    st = status(cli, idx, target)
    assert st["updates pending"] == 0 and st["left"] == 0


def test_update_reason_without_attribute_digests(source, receiver, cli, monkeypatch) -> None:
    """With the digests off (the default: PACSCOPY_ATTR_DIGESTS unset), an update's reason names the
    attributes the index keeps that changed, and says "dataset bytes" with what to do when none of
    them did: never an empty or wrong attribute list."""
    from pacscopy.scan import parse

    monkeypatch.setenv("PACSCOPY_ATTR_DIGESTS", "off")      # the scan's worker processes
    monkeypatch.setattr(parse, "ATTR_DIGESTS", False)       # this process
    root, idx = source
    target, _ = receiver
    a, b = files_of(root, idx, "status = 'ok' AND sop_instance_uid IS NOT NULL")[:2]
    assert cli("send", "--target", target, "--index", idx, "-q").code == 0
    edit(a, SeriesDescription="SERIES REVISED")          # not kept in the index
    edit(b, StudyDescription="STUDY REVISED")            # kept in the index
    sops = {p: sop_of(idx, p) for p in (a, b)}
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    assert rows(idx, "SELECT count(*) FROM attr_changes") == [(0,)]     # nothing compared per attribute
    _, data = totals(cli, idx, target, "--no-query")
    why = {p["sop_instance_uid"]: p["reason"] for p in data["problems"] if p["final_state"] == "update_pending"}
    assert why == {
        sops[a]: "changed since stored: dataset bytes (attributes pacscopy does not index; "
                 "verify --mode retrieve after the update names them); pacscopy send sends it as an update",
        sops[b]: "changed since stored: StudyDescription; pacscopy send sends it as an update",
    }, why
