"""verify and reconcile against real peers: Orthanc, DCMTK dcmqrscp, pacscopy receive."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest


from .conftest import counts, rows
from .peers import PEER_ENV, dcmqrscp, faulty_scp, free_port, orthanc


@pytest.fixture
def sent_setup(planned):
    return planned, None


def _orthanc_id(peer, sop: str) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{peer.http}/tools/lookup", data=sop.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        (hit,) = json.loads(r.read())
    return hit["ID"]


def test_orthanc_find_commit_retrieve_and_reconcile(sent_setup, tmp_path, cli) -> None:
    idx, _ = sent_setup
    cb = free_port()
    mods = {"DicomModalities": {"pacscopy": ["PACSCOPY", "127.0.0.1", cb]}}
    with orthanc(tmp_path, extra=mods) as peer:
        t = peer.target
        r = cli("reconcile", "--target", t, "--index", idx)
        assert r.code == 1 and "NOT COMPLETE" in r.out and "not_sent" in r.out
        assert cli("send", "--target", t, "--index", idx, "-q").code == 0
        r = cli("reconcile", "--target", t, "--index", idx)
        assert r.code == 1 and "stored_unverified" in r.out
        for mode in ("find", "retrieve"):
            r = cli("verify", "--target", t, "--index", idx, "--mode", mode, "-q")
            assert r.code == 0, r.out + r.err
            assert counts(r.out)["verified"] == 15, r.out
        r = cli("verify", "--target", t, "--index", idx, "--mode", "commit", "--port", cb, "-q", "--timeout", "20")
        assert r.code == 0, r.out + r.err + peer.logtext()[-2000:]
        assert counts(r.out)["verified"] == 15, r.out
        # retrieve by C-MOVE to our own SCP (for targets without C-GET)
        r = cli("verify", "--target", t, "--index", idx, "--mode", "retrieve", "--move", "--port", cb, "-q")
        assert r.code == 0, r.out + r.err + peer.logtext()[-2000:]
        assert counts(r.out)["verified"] == 15, r.out
        r = cli("reconcile", "--target", t, "--index", idx, "--format", "json")
        assert r.code == 0, r.out
        data = json.loads(r.out)
        assert data["complete"] is True and {k: v for k, v in data["totals"].items() if v} == {"verified": 15} and data["instances"] == 15
        assert all(s["study_state"] == "ok" and s["on_target"] == s["stored"] for s in data["studies"])
        # an instance deleted on the target (through its REST API) is missing everywhere
        (gone,) = rows(idx, "SELECT min(sop_instance_uid) FROM stored")[0]
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{peer.http}/instances/{_orthanc_id(peer, gone)}", method="DELETE"), timeout=30)
        for mode in ("find", "retrieve"):
            r = cli("verify", "--target", t, "--index", idx, "--mode", mode, "-q")
            assert r.code == 1 and counts(r.out)["missing_on_target"] == 1, r.out
            assert gone in r.out
        r = cli("verify", "--target", t, "--index", idx, "--mode", "commit", "--port", cb, "-q", "--timeout", "20")
        assert r.code == 1 and gone in r.out and "0x0112" in r.out
        r = cli("reconcile", "--target", t, "--index", idx, "--format", "json")
        data = json.loads(r.out)
        assert r.code == 1 and data["complete"] is False
        assert {k: v for k, v in data["totals"].items() if v} == {"verified": 14, "missing_on_target": 1}
        assert [p["sop_instance_uid"] for p in data["problems"]] == [gone]
        assert any(s["study_state"] == "incomplete" for s in data["studies"])
        r = cli("reconcile", "--target", t, "--index", idx, "--format", "html", "--out", tmp_path / "rec.html")
        assert r.code == 1
        page = (tmp_path / "rec.html").read_text()
        assert 'data-complete="false"' in page
        embedded = json.loads(page.split('<script type="application/json" id="report-data">', 1)[1].split("</script>")[0])
        assert len(embedded["final_states"]) == 2  # a bar each, drawn in the browser (tests/test_report.py)


def test_orthanc_keeps_the_first_copy_retrieve_catches_it(tmp_path, cli, archive) -> None:
    """Orthanc answers 0x0000 to a second C-STORE of a SOPInstanceUID but keeps the first copy."""
    idx = tmp_path / "c.duckdb"
    assert cli("scan", archive.root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    prefix = str(archive.root) + "/"
    (sop,) = rows(idx, "SELECT sop_instance_uid FROM files WHERE path = $p", {"p": prefix + "vol2/dup_conflict.dcm"})[0]
    (orig,) = rows(idx, "SELECT path FROM files WHERE sop_instance_uid = $s AND path <> $p",
                   {"s": sop, "p": prefix + "vol2/dup_conflict.dcm"})[0]
    with orthanc(tmp_path) as peer:
        # another system already delivered the original copy
        subprocess.run(["storescu", "-aec", "ORTHANC", "127.0.0.1", str(peer.port), orig], check=True,
                       env=PEER_ENV, capture_output=True)
        # we decide to send the conflicting copy; the target answers success
        assert cli("decide", "--sop", sop, "--action", "send", "--path", prefix + "vol2/dup_conflict.dcm",
                   "--note", "test: corrected copy", "--index", idx).code == 0
        r = cli("send", "--target", peer.target, "--index", idx, "-q", "--where", "sop_instance_uid = '" + sop + "'")
        assert r.code == 0 and "stored:    1" in r.out
        r = cli("verify", "--target", peer.target, "--index", idx, "--mode", "find", "-q")
        assert r.code == 0  # C-FIND cannot tell
        r = cli("verify", "--target", peer.target, "--index", idx, "--mode", "retrieve", "-q")
        assert r.code == 1 and counts(r.out)["mismatch"] == 1, r.out
    got = rows(idx, "SELECT outcome, header_diff, pixels_equal, detail FROM verification_latest WHERE mode = 'retrieve'")
    assert got[0][0] == "mismatch" and got[0][1] == ["InstitutionName"] and got[0][2] is True
    assert "header differs in: InstitutionName; pixels equal" in got[0][3]


def test_dcmqrscp_find_and_retrieve(sent_setup, tmp_path, cli) -> None:
    idx, _ = sent_setup
    with dcmqrscp(tmp_path) as peer:
        r = cli("send", "--target", peer.target, "--index", idx, "-q", "--associations", "1")
        assert r.code == 0, r.out + peer.logtext()[-2000:]
        for mode in ("find", "retrieve"):
            r = cli("verify", "--target", peer.target, "--index", idx, "--mode", mode, "-q")
            assert r.code == 0, r.out + peer.logtext()[-2000:]
            assert counts(r.out)["verified"] == 15, r.out
        r = cli("reconcile", "--target", peer.target, "--index", idx)
        assert r.code == 0, r.out
        assert "COMPLETE" in r.out


def test_verify_bad_input(sent_setup, tmp_path, cli) -> None:
    idx, _ = sent_setup
    r = cli("verify", "--target", "X@127.0.0.1:104", "--index", idx)
    assert r.code == 2 and "nothing is recorded as stored" in r.err and len(r.err.strip().splitlines()) == 1
    with faulty_scp(tmp_path, "a700") as peer:  # a storage-only SCP: no query/retrieve
        assert cli("send", "--target", peer.target, "--index", idx, "-q").code == 0
        before = rows(idx, "SELECT count(*) FROM verifications")
        for mode in ("find", "retrieve", "commit"):
            r = cli("verify", "--target", peer.target, "--index", idx, "--mode", mode)
            assert r.code == 2, (mode, r.out, r.err)
            assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
        assert rows(idx, "SELECT count(*) FROM verifications") == before
        assert rows(idx, "SELECT count(*) FROM stored") == [(15,)]
    r = cli("verify", "--target", peer.target, "--index", idx, "--timeout", "2")
    assert r.code == 2 and "could not be reached" in r.err
    r = cli("reconcile", "--target", peer.target, "--index", idx, "--timeout", "2")
    assert r.code == 1 and "not queried" in r.out  # the books are still reported
