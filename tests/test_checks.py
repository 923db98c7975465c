"""Checks, plan and decisions on the planted archive, a clean archive, and pydicom's samples."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pacscopy.check.checks import check_names
from pacscopy.testing.synth import make_archive

from .conftest import rows

CHECKS = [
    "corrupt_file", "duplicate_identical", "duplicate_reencoded", "duplicate_conflict",
    "study_uid_multiple_patients", "series_uid_multiple_studies", "accession_multiple_patients",
    "patient_id_inconsistent_demographics", "invalid_uid", "missing_required_attribute",
    "private_sop_class", "meta_sop_instance_mismatch",
]


@pytest.fixture(scope="module")
def checked(archive, tmp_path_factory) -> Path:
    """The planted archive, scanned and checked (a private copy of the index)."""
    from pacscopy.cli import main

    index = tmp_path_factory.mktemp("chk") / "checked.duckdb"
    for args in (["scan", str(archive.root)], ["check"]):
        try:
            main([*args, "--index", str(index), "--quiet"])
        except SystemExit as e:
            assert not e.code
    return index


def _found(index: Path, root: Path, check: str) -> set[str]:
    prefix = str(root) + "/"
    return {p[len(prefix):] for (p,) in rows(index, "SELECT path FROM findings WHERE check_id = $c", {"c": check})}


#: Checks against the old PACS's database export: tested in test_manifest.py (nothing without a manifest).
MANIFEST_CHECKS = ["file_without_manifest", "manifest_deleted", "manifest_mismatch", "manifest_without_file"]


def test_all_checks_ship() -> None:
    assert sorted(CHECKS + MANIFEST_CHECKS) == check_names()


@pytest.mark.parametrize("check", CHECKS)
def test_planted_archive_finds_exactly_the_planted_cases(checked, archive, check) -> None:
    expected = {rel for rel, w in archive.expected.items() if check in w.checks}
    assert expected, f"nothing planted for {check}"
    assert _found(checked, archive.root, check) == expected


def test_clean_archive_has_no_findings(tmp_path, cli) -> None:
    root = tmp_path / "clean"
    make_archive(root, defects=False, conflicts=False, specials=False)
    idx = tmp_path / "c.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    r = cli("check", "--index", idx)
    assert r.code == 0, r.err
    assert rows(idx, "SELECT check_id, path, detail FROM findings") == []
    assert rows(idx, "SELECT DISTINCT disposition FROM plan") == [("send",)]


def test_details_name_what_differs(checked, archive) -> None:
    (d,) = rows(checked, "SELECT DISTINCT detail FROM findings WHERE check_id = 'duplicate_conflict'")[0]
    assert d.endswith("differ in: InstitutionName")
    (d,) = rows(checked, "SELECT detail FROM findings WHERE check_id = 'duplicate_reencoded' AND path LIKE '%_be.dcm'")[0]
    assert "1.2.840.10008.1.2.2" in d and "pixels compared decoded" in d
    details = {d for (d,) in rows(checked, "SELECT DISTINCT detail FROM findings WHERE check_id = 'patient_id_inconsistent_demographics'")}
    (d,) = details
    assert "DOE^JOHNNY / 19610203 (1)" in d and "DOE^PATIENT2" in d
    (d,) = rows(checked, "SELECT detail FROM findings WHERE check_id = 'invalid_uid'")[0]
    assert "leading zero" in d
    sev = dict(rows(checked, "SELECT group_key, severity FROM findings WHERE check_id = 'private_sop_class'"))
    assert sev["1.2.840.113619.4.27"] == "warning" and sev["1.2.840.10008.5.1.4.1.1.2.1"] == "info"
    rec = rows(checked, "SELECT recoverable, detail FROM findings WHERE check_id = 'corrupt_file' AND path LIKE '%truncated_copy.dcm'")
    assert rec[0][0] is True and "intact copy" in rec[0][1]
    assert rows(checked, "SELECT count(*) FROM findings WHERE check_id = 'corrupt_file' AND recoverable") == [(1,)]


def test_plan_has_one_row_per_instance_with_the_default_rules(checked, archive) -> None:
    (n_plan, n_distinct) = rows(checked, "SELECT count(*), count(DISTINCT sop_instance_uid) FROM plan")[0]
    (n_sops,) = rows(checked, "SELECT count(DISTINCT sop_instance_uid) FROM files WHERE status IN ('ok','suspect','corrupt','missing')")[0]
    assert n_plan == n_distinct == n_sops
    assert rows(checked, "SELECT count(*) FROM plan p JOIN files f USING (path) WHERE f.status IN ('dicomdir','not_dicom','skipped')") == [(0,)]
    prefix = str(archive.root) + "/"

    def plan_of(rel: str) -> tuple[str, str, str]:
        return rows(checked, "SELECT p.disposition, p.path, p.why FROM plan p JOIN files f USING (sop_instance_uid) "
                    "WHERE f.path = $p", {"p": prefix + rel})[0]

    assert plan_of("bad/truncated_pixels.dcm")[0] == "quarantine"
    assert plan_of("bad/lost_block.dcm")[0] == "quarantine"
    d, path, why = plan_of("vol2/truncated_copy.dcm")
    assert d in ("send", "hold") and not path.endswith("truncated_copy.dcm") and "damaged" in why
    assert plan_of("vol2/dup_conflict.dcm")[0] == "hold"
    d, path, why = plan_of("vol2/dup_identical.dcm")
    assert "1 duplicate copy skipped" in why
    d, path, why = plan_of("vol2/dup_reencoded_be.dcm")
    assert not path.endswith("_be.dcm"), "explicit VR little endian copy preferred"
    for rel in ("vol2/study_other_patient.dcm", "vol2/accession_other_patient.dcm", "vol2/patient_other_name.dcm",
                "vol2/series_other_study.dcm", "vol2/empty_patient_id.dcm"):
        d, _, why = plan_of(rel)
        assert d == "hold" and "ID conflict" in why, rel
    assert plan_of("vol2/private_class.dcm")[0] == "send"
    # the file-level view: the other copy is a skipped duplicate
    got = dict(rows(checked, "SELECT path, disposition FROM plan_files WHERE sop_instance_uid = "
                    "(SELECT sop_instance_uid FROM files WHERE path = $p)", {"p": prefix + "vol2/dup_identical.dcm"}))
    assert sorted(got.values()) == ["send", "skip_duplicate"]


def test_decisions_override_and_survive_recheck(tmp_path, archive, cli) -> None:
    idx = tmp_path / "d.duckdb"
    shutil.copy(archive.root.parent / ".." / "x", idx) if False else None
    assert cli("scan", archive.root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    prefix = str(archive.root) + "/"
    (sop,) = rows(idx, "SELECT sop_instance_uid FROM files WHERE path = $p", {"p": prefix + "vol2/dup_conflict.dcm"})[0]
    r = cli("decide", "--sop", sop, "--action", "send", "--path", prefix + "vol2/dup_conflict.dcm",
            "--note", "ticket 4711: the Other Hospital copy is the corrected one", "--index", idx)
    assert r.code == 0 and "recorded 1 decision" in r.out
    want = ("send", prefix + "vol2/dup_conflict.dcm", "decision: ticket 4711: the Other Hospital copy is the corrected one")
    q = "SELECT disposition, path, why FROM plan WHERE sop_instance_uid = $s"
    assert rows(idx, q, {"s": sop})[0] == want
    assert cli("check", "--index", idx, "-q").code == 0
    assert rows(idx, q, {"s": sop})[0] == want
    assert rows(idx, "SELECT auto_disposition FROM plan WHERE sop_instance_uid = $s", {"s": sop}) == [("hold",)]
    # a CSV of decisions
    (sop2,) = rows(idx, "SELECT sop_instance_uid FROM files WHERE path = $p", {"p": prefix + "vol2/private_class.dcm"})[0]
    csvf = tmp_path / "d.csv"
    csvf.write_text(f"sop_instance_uid,action,note\n{sop2},skip,vendor raw data: not migrated\n")
    r = cli("decide", "--csv", csvf, "--index", idx)
    assert r.code == 0 and "recorded 1 decision" in r.out
    assert rows(idx, q, {"s": sop2})[0][0] == "skip"


@pytest.mark.parametrize(
    "content,needle",
    [
        ("sop_instance_uid,action,note\n1.2.3,frobnicate,x\n", "line 2: action 'frobnicate'"),
        ("sop_instance_uid,action,note\n{sop},send,ok\n{sop},send\n", "line 3: expected 3 fields, found 2"),
        ("uid,what\n", "line 1: header must name"),
        ("sop_instance_uid,action,note\n9.9.9.9,hold,unknown uid\n", "9.9.9.9 is not in the index"),
        ("", "empty"),
    ],
)
def test_bad_decisions_are_refused_and_nothing_is_lost(checked, tmp_path, cli, content, needle) -> None:
    idx = tmp_path / "copy.duckdb"
    shutil.copy(checked, idx)
    (sop,) = rows(idx, "SELECT any_value(sop_instance_uid) FROM plan")[0]
    assert cli("decide", "--sop", sop, "--action", "hold", "--note", "keep me", "--index", idx).code == 0
    before = rows(idx, "SELECT * FROM decisions")
    f = tmp_path / "bad.csv"
    f.write_text(content.replace("{sop}", sop))
    r = cli("decide", "--csv", f, "--index", idx)
    assert r.code == 2
    lines = [l for l in r.err.splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0], r.err
    assert rows(idx, "SELECT * FROM decisions") == before


def test_bad_check_name_and_unknown_uid(checked, tmp_path, cli) -> None:
    idx = tmp_path / "copy.duckdb"
    shutil.copy(checked, idx)
    before = rows(idx, "SELECT count(*) FROM findings")
    r = cli("check", "no_such_check", "--index", idx)
    assert r.code == 2 and "unknown check 'no_such_check'" in r.err and len(r.err.strip().splitlines()) == 1
    assert rows(idx, "SELECT count(*) FROM findings") == before
    r = cli("decide", "--sop", "1.2.3.4", "--action", "send", "--note", "x", "--index", idx)
    assert r.code == 2 and "1.2.3.4 is not in the index" in r.err
    r = cli("decide", "--sop", "1.2.3.4", "--action", "zap", "--note", "x", "--index", idx)
    assert r.code == 2 and "zap" in r.err


def test_single_check_runs_alone(checked, tmp_path, cli) -> None:
    idx = tmp_path / "copy.duckdb"
    shutil.copy(checked, idx)
    before = rows(idx, "SELECT check_id, count(*) FROM findings GROUP BY 1 ORDER BY 1")
    r = cli("check", "invalid_uid", "--index", idx)
    assert r.code == 0
    assert rows(idx, "SELECT check_id, count(*) FROM findings GROUP BY 1 ORDER BY 1") == before
    r = cli("query", "invalid_uid", "--index", idx, "--format", "csv")
    assert r.code == 0 and "leading zero" in r.out


# -- the real problems in pydicom's own sample files -----------------------------------------

@pytest.fixture(scope="module")
def pyd_checked(pydicom_files, tmp_path_factory) -> Path:
    from pacscopy.cli import main

    index = tmp_path_factory.mktemp("pyd") / "pyd.duckdb"
    for args in (["scan", str(pydicom_files)], ["check"]):
        try:
            main([*args, "--index", str(index), "--quiet"])
        except SystemExit as e:
            assert not e.code
    return index


def _names(index: Path, check: str) -> set[str]:
    return {p.rsplit("/test_files/", 1)[1] for (p,) in rows(index, "SELECT path FROM findings WHERE check_id = $c", {"c": check})}


def test_pydicom_samples_real_problems(pyd_checked) -> None:
    # one instance in several transfer syntaxes
    assert {"MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm"} <= _names(pyd_checked, "duplicate_reencoded")
    assert {"liver_1frame.dcm", "liver_expb_1frame.dcm"} <= _names(pyd_checked, "duplicate_reencoded")
    # SOPInstanceUIDs reused for different objects
    conflict = _names(pyd_checked, "duplicate_conflict")
    assert {"SC_rgb_rle.dcm", "SC_rgb_rle_16bit.dcm", "SC_rgb_rle_32bit.dcm"} <= conflict
    (d,) = rows(pyd_checked, "SELECT any_value(detail) FROM findings WHERE check_id='duplicate_conflict' AND path LIKE '%SC_rgb_rle_16bit.dcm'")[0]
    assert "BitsAllocated" in d
    # AccessionNumbers used for different patients
    acc = {k for (k,) in rows(pyd_checked, "SELECT DISTINCT group_key FROM findings WHERE check_id = 'accession_multiple_patients'")}
    assert acc
    # file meta and dataset disagreeing on the SOPInstanceUID
    assert {"rtdose.dcm", "rtplan.dcm"} <= _names(pyd_checked, "meta_sop_instance_mismatch")
    # the truncated MR has an intact copy: recoverable
    rec = dict(rows(pyd_checked, "SELECT path, recoverable FROM findings WHERE check_id = 'corrupt_file'"))
    assert [v for p, v in rec.items() if p.endswith("/MR_truncated.dcm")] == [True]
    assert [v for p, v in rec.items() if p.endswith("/JPEGLSNearLossless_08.dcm")] == [False]
    # identical copies
    assert {"SC_jpeg_no_color_transform_2.dcm", "SC_rgb_jpeg_app14_dcmd.dcm"} <= _names(pyd_checked, "duplicate_identical")
