"""Issue 9's hostile-input findings: unsafe maps and decisions, damaged indexes,
query side effects, bad AE titles and ports, and the small ones. Each test
failed before its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pacscopy.testing.synth import make_archive
from .conftest import rows


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two patients, 12 instances, scanned and checked (copy it before writing)."""
    from pacscopy.cli import main

    root = tmp_path_factory.mktemp("hard") / "src"
    make_archive(root, patients=2, studies_per_patient=1, series_per_study=2, instances_per_series=3,
                 defects=False, conflicts=False, specials=False)
    idx = root.parent / "small.duckdb"
    for args in (["scan", str(root), "--index", str(idx), "-q"], ["check", "--index", str(idx), "-q"]):
        try:
            main(args)
        except SystemExit as e:
            assert not e.code
    return idx


@pytest.fixture
def idx(small: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "i.duckdb"
    shutil.copy(small, dst)
    return dst


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("pacscopy: error: ")
    return lines[0]


def patients(index: Path) -> list[str]:
    return [p for (p,) in rows(index, "SELECT DISTINCT patient_id FROM files WHERE patient_id IS NOT NULL ORDER BY 1")]


# -- 3. map -------------------------------------------------------------------------

@pytest.mark.parametrize("line,needle", [
    ("A\\B,NEW1", "contains a backslash"),
    ("OLD1,NEW\x01X", "contains a control character"),
    ("OLD1," + "9" * 65, "65 characters long: at most 64"),
    ("OLD1,", "new PatientID is empty"),
    (",NEW1", "old PatientID is empty"),
    ("OLD1,NEW1,ISS\\UER", "issuer 'ISS\\\\UER' contains a backslash"),
])
def test_map_refuses_invalid_patient_ids(idx, tmp_path, cli, line, needle) -> None:
    f = tmp_path / "m.csv"
    f.write_text(f"old_id,new_id,issuer\nX1,Y1\n{line}\n")
    r = cli("map", "--csv", f, "--index", idx)
    assert r.code == 2
    msg = one_line(r.err)
    assert "line 3" in msg and needle in msg, msg
    assert rows(idx, "SELECT count(*) FROM patient_map") == [(0,)]


def test_map_onto_another_patients_id_needs_merge_and_is_recorded(idx, tmp_path, cli) -> None:
    a, b = patients(idx)
    f = tmp_path / "m.csv"
    f.write_text(f"old_id,new_id\n{a},{b}\n")
    r = cli("map", "--csv", f, "--index", idx)
    assert r.code == 2
    msg = one_line(r.err)
    assert f"new PatientID '{b}' already belongs to another patient" in msg and "--merge" in msg
    assert rows(idx, "SELECT count(*) FROM patient_map") == [(0,)]
    r = cli("map", "--csv", f, "--index", idx, "--merge")
    assert r.code == 0 and "loaded 1" in r.out
    assert rows(idx, "SELECT old_patient_id, new_patient_id, is_merge FROM patient_map") == [(a, b, True)]


def test_map_two_ids_onto_one_is_a_merge(idx, tmp_path, cli) -> None:
    a, b = patients(idx)
    f = tmp_path / "m.csv"
    f.write_text(f"{a},UNIFIED\n{b},UNIFIED\n")
    r = cli("map", "--csv", f, "--index", idx)
    assert r.code == 2
    msg = one_line(r.err)
    assert "line 2" in msg and "both mapped onto 'UNIFIED'" in msg
    r = cli("map", "--csv", f, "--index", idx, "--merge")
    assert r.code == 0
    assert rows(idx, "SELECT count(*) FILTER (WHERE is_merge) FROM patient_map") == [(2,)]


@pytest.mark.parametrize("content", [
    "A,B\nB,C\n",          # chain
    "B,C\nA,B\n",          # chain, the other order
    "A,B\nB,A\n",          # swap
    "A,B\nB,C\nC,A\n",     # cycle
])
def test_map_refuses_chains_swaps_and_cycles(idx, tmp_path, cli, content) -> None:
    f = tmp_path / "m.csv"
    f.write_text(content)
    r = cli("map", "--csv", f, "--index", idx, "--merge")  # not even as a merge
    assert r.code == 2
    msg = one_line(r.err)
    assert "chain, swap or cycle" in msg and "line 1" in msg
    assert rows(idx, "SELECT count(*) FROM patient_map") == [(0,)]


def test_map_refuses_a_chain_with_an_earlier_load(idx, tmp_path, cli) -> None:
    f = tmp_path / "m.csv"
    f.write_text("A,B\n")
    assert cli("map", "--csv", f, "--index", idx).code == 0
    f.write_text("B,C\n")
    r = cli("map", "--csv", f, "--index", idx)
    assert r.code == 2 and "an earlier map load" in one_line(r.err)
    # reloading the same mapping, or correcting it, is fine
    f.write_text("A,D\n")
    assert cli("map", "--csv", f, "--index", idx).code == 0
    assert rows(idx, "SELECT old_patient_id, new_patient_id FROM patient_map") == [("A", "D")]


def test_map_one_id_mapped_twice_names_both_lines(idx, tmp_path, cli) -> None:
    f = tmp_path / "m.csv"
    f.write_text("A,B\nX,Y\nA,C\n")
    r = cli("map", "--csv", f, "--index", idx)
    assert r.code == 2 and "'A' is mapped twice (lines 1 and 3)" in one_line(r.err)


# -- 3. decide --csv ----------------------------------------------------------------

def test_decide_csv_refuses_one_instance_twice_naming_both_lines(idx, tmp_path, cli) -> None:
    s1, s2 = [s for (s,) in rows(idx, "SELECT sop_instance_uid FROM plan ORDER BY 1 LIMIT 2")]
    f = tmp_path / "d.csv"
    f.write_text(f"sop_instance_uid,action,note\n{s1},send,ok\n{s2},skip,no\n{s1},hold,wait\n")
    r = cli("decide", "--csv", f, "--index", idx)
    assert r.code == 2
    msg = one_line(r.err)
    assert f"{f}, line 4: SOPInstanceUID {s1} is decided with different actions (send on line 2, hold on line 4)" in msg
    assert rows(idx, "SELECT count(*) FROM decisions") == [(0,)]
    f.write_text(f"sop_instance_uid,action,note\n{s1},send,ok\n{s2},skip,no\n")
    r = cli("decide", "--csv", f, "--index", idx)
    assert r.code == 0 and "recorded 2 decisions" in r.out
    assert rows(idx, "SELECT sop_instance_uid, action FROM decisions ORDER BY 1") == [(s1, "send"), (s2, "skip")]


def test_decide_csv_checks_paths_set_wise(idx, tmp_path, cli) -> None:
    (s1, p1), (s2, p2) = rows(idx, "SELECT sop_instance_uid, path FROM plan ORDER BY 1 LIMIT 2")
    f = tmp_path / "d.csv"
    f.write_text(f"sop_instance_uid,action,note,path\n{s1},send,ok,{p1}\n{s2},send,ok,{p1}\n")
    r = cli("decide", "--csv", f, "--index", idx)
    assert r.code == 2 and f"line 3: {p1} is not a file of SOPInstanceUID {s2}" in one_line(r.err)
    f.write_text(f"sop_instance_uid,action,note,path\n{s1},send,ok,{p1}\n{s2},hold,ok,{p2}\n")
    r = cli("decide", "--csv", f, "--index", idx)
    assert r.code == 2 and "line 3: --path only makes sense with --action send" in one_line(r.err)
    assert rows(idx, "SELECT count(*) FROM decisions") == [(0,)]


# -- 9. study_uid_multiple_patients vs name variants on conflicting copies -------------

def _obrien_archive(root: Path, *, other_id_copy: bool = False) -> tuple[str, list[str]]:
    """A study of 12 instances as O'BRIEN^MARY ANN; a second copy of 3 of them (same
    SOPInstanceUIDs, same PatientID) spells OBRIEN^MARYANN. Returns (study, the 3 SOPs)."""
    import copy
    import random

    import numpy as np

    from pacscopy.testing.synth import _UIDs, make_dataset, part10_bytes

    uid = _UIDs(random.Random(9))
    rng = np.random.default_rng(9)
    study = uid()
    conflicting = []
    for i in range(12):
        ds = make_dataset(uid, rng, patient_id="PID0042", patient_name="O'BRIEN^MARY ANN", birth_date="19500505",
                          study_uid=study, series_uid=study + ".1", accession="ACC42", study_date="20050505",
                          instance_number=i + 1, rows=8, columns=8)
        (root / "vol1").mkdir(parents=True, exist_ok=True)
        (root / "vol1" / f"IM{i:02d}.dcm").write_bytes(part10_bytes(ds))
        if i < 3:
            c = copy.deepcopy(ds)
            c.PatientName = "OBRIEN^MARYANN"
            (root / "vol2").mkdir(parents=True, exist_ok=True)
            (root / "vol2" / f"IM{i:02d}.dcm").write_bytes(part10_bytes(c))
            conflicting.append(ds.SOPInstanceUID)
    if other_id_copy:
        ds = make_dataset(uid, rng, patient_id="PID0043", patient_name="ROE^RICHARD", birth_date="19600606",
                          study_uid=study, series_uid=study + ".2", accession="ACC42", study_date="20050505",
                          rows=8, columns=8)
        (root / "vol2" / "OTHER.dcm").write_bytes(part10_bytes(ds))
    return study, conflicting


def test_name_variant_on_conflicting_copies_holds_those_instances_not_the_study(tmp_path, cli) -> None:
    study, conflicting = _obrien_archive(tmp_path / "src")
    idx = tmp_path / "i.duckdb"
    assert cli("scan", tmp_path / "src", "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    assert rows(idx, "SELECT count(*) FROM findings WHERE check_id = 'study_uid_multiple_patients'") == [(0,)]
    demo = rows(idx, "SELECT DISTINCT sop_instance_uid FROM findings "
                     "WHERE check_id = 'patient_id_inconsistent_demographics' ORDER BY 1")
    assert [s for (s,) in demo] == sorted(conflicting)
    held = dict(rows(idx, "SELECT disposition, count(*) FROM plan GROUP BY 1"))
    assert held == {"hold": 3, "send": 9}


def test_one_study_under_two_patient_ids_holds_the_study(tmp_path, cli) -> None:
    study, _ = _obrien_archive(tmp_path / "src", other_id_copy=True)
    idx = tmp_path / "i.duckdb"
    assert cli("scan", tmp_path / "src", "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    got = rows(idx, "SELECT count(*), any_value(detail) FROM findings WHERE check_id = 'study_uid_multiple_patients'")
    assert got[0][0] == 16 and "under 2 patients (PID0042, PID0043)" in got[0][1]
    assert rows(idx, "SELECT DISTINCT disposition FROM plan") == [("hold",)]


def test_name_variant_on_a_single_copy_still_flags_the_patient(tmp_path, cli) -> None:
    study, _ = _obrien_archive(tmp_path / "src")
    shutil.move(tmp_path / "src" / "vol2" / "IM00.dcm", tmp_path / "IM00.dcm")  # now the variant stands alone
    (tmp_path / "src" / "vol1" / "IM00.dcm").unlink()
    shutil.move(tmp_path / "IM00.dcm", tmp_path / "src" / "vol1" / "IM00.dcm")
    idx = tmp_path / "i.duckdb"
    assert cli("scan", tmp_path / "src", "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    assert rows(idx, "SELECT count(DISTINCT sop_instance_uid) FROM findings "
                     "WHERE check_id = 'patient_id_inconsistent_demographics'") == [(12,)]
