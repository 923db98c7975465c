"""The cycle against peers nobody here wrote: pynetdicom's qrscp app, tiny-pacs (PyPI), Orthanc configurations."""

from __future__ import annotations

import pydicom
import pytest

from .conftest import rows
from .peers import orthanc, orthanc_get, orthanc_json, qrscp, tiny_pacs
from .test_send import assert_all_stored_once, to_send


def test_qrscp_probe_send_and_retrieve(planned, tmp_path, cli) -> None:
    with qrscp(tmp_path) as peer:
        r = cli("probe", "--target", peer.target, "--index", planned)
        assert r.code == 0, r.err
        r = cli("send", "--target", peer.target, "--index", planned, "-q")
        assert r.code == 0, r.out + r.err
        r = cli("verify", "--target", peer.target, "--index", planned, "--mode", "retrieve")
        assert peer.alive()
    want = to_send(planned)
    assert_all_stored_once(planned, peer.target, set(want))
    got = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID
           for p in (peer.storage / "instances").rglob("*") if p.is_file()}
    assert got == set(want)
    assert rows(planned, "SELECT outcome, count(*) FROM verifications WHERE mode = 'retrieve' GROUP BY 1") == [
        ("verified", len(want))], r.out


def test_tiny_pacs_one_association(planned, tmp_path, cli) -> None:
    """tiny-pacs keeps its index in SQLite, which locks with two concurrent associations: --associations 1."""
    with tiny_pacs(tmp_path) as peer:
        r = cli("probe", "--target", peer.target, "--index", planned)
        assert r.code == 0, r.err
        r = cli("send", "--target", peer.target, "--index", planned, "-q", "--associations", "1")
        assert r.code == 0, r.out + r.err + peer.logtext()[-3000:]
        assert peer.alive()
    want = to_send(planned)
    assert_all_stored_once(planned, peer.target, set(want))
    stored = {}
    for p in (peer.storage / "files").rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            stored[pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID] = data
    assert set(stored) == set(want)


@pytest.mark.parametrize("overwrite", [False, True])
def test_orthanc_answers_success_to_an_update_that_only_retrieve_shows(tmp_path, cli, overwrite) -> None:
    """A second C-STORE of a known SOPInstanceUID with other content: Orthanc answers 0x0000 whether it keeps
    the first copy (default) or replaces it (OverwriteInstances: true); only the retrieve-back tells."""
    from .test_send import planned_corpus

    idx = planned_corpus(tmp_path, cli, 3, 4_000, "o.duckdb")
    with orthanc(tmp_path, extra={"OverwriteInstances": overwrite}) as peer:
        first = peer.target
        assert cli("send", "--target", first, "--index", idx, "-q").code == 0
        # the source changes (the old PACS updated the object in place), is rescanned and re-planned
        (sop, path), = rows(idx, "SELECT sop_instance_uid, path FROM plan ORDER BY 1 LIMIT 1")
        ds = pydicom.dcmread(path)
        ds.InstitutionName = "New Hospital"
        ds.save_as(path)
        assert cli("scan", tmp_path / "corpus", "--index", idx, "-q").code == 0
        assert cli("check", "--index", idx, "-q").code == 0
        # the same Orthanc under another name: the queue is per target, so everything goes again
        again = f"{peer.ae}@localhost:{peer.port}"
        r = cli("send", "--target", again, "--index", idx, "-q")
        assert r.code == 0, r.out
        assert rows(idx, "SELECT DISTINCT status FROM transfers WHERE target = $t", {"t": again}) == [(0,)]
        ids = orthanc_json(peer, "/instances")
        assert len(ids) == 3
        kept = {}
        for oid in ids:
            got = pydicom.dcmread(__import__("io").BytesIO(orthanc_get(peer, f"/instances/{oid}/file")))
            kept[got.SOPInstanceUID] = str(got.InstitutionName)
        assert kept[sop] == ("New Hospital" if overwrite else "Old Hospital")
        cli("verify", "--target", again, "--index", idx, "--mode", "retrieve")
    verdict = dict(rows(idx, "SELECT sop_instance_uid, outcome FROM verifications WHERE mode = 'retrieve' "
                             "AND target = $t", {"t": again}))
    assert verdict[sop] == ("verified" if overwrite else "mismatch")
    assert all(v == "verified" for s, v in verdict.items() if s != sop)
