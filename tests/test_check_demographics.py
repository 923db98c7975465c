"""check: PatientSex in the demographics check, retired SOP classes named as retired."""

from __future__ import annotations

import random

import numpy as np

from pacscopy.testing.synth import _UIDs, make_dataset, part10_bytes

from .conftest import rows


def _write(root, uid, rng, n: int, sex: str, sop_class: str = "1.2.840.10008.5.1.4.1.1.2", pid: str = "PSEX"):
    ds = make_dataset(uid, rng, patient_id=pid, patient_name="SEX^TEST", birth_date="19700101",
                      study_uid="1.2.826.0.1.3680043.8.498.7.99.1", series_uid=f"1.2.826.0.1.3680043.8.498.7.99.{n + 2}",
                      accession="ASEX", study_date="20200101", instance_number=n, sop_class=sop_class)
    ds.PatientSex = sex
    (root / f"IM{n}.dcm").write_bytes(part10_bytes(ds))
    return ds.SOPInstanceUID


def test_one_patient_with_two_sexes_is_inconsistent(tmp_path, cli) -> None:
    root = tmp_path / "src"
    root.mkdir()
    uid, rng = _UIDs(random.Random(3)), np.random.default_rng(3)
    sops = [_write(root, uid, rng, 1, "M"), _write(root, uid, rng, 2, "F"), _write(root, uid, rng, 3, "M"),
            _write(root, uid, rng, 4, "")]
    # another patient whose only difference is a missing value: not a conflict
    _write(root, uid, rng, 5, "F", pid="OTHER")
    _write(root, uid, rng, 6, "", pid="OTHER")
    idx = tmp_path / "s.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    got = rows(idx, "SELECT sop_instance_uid, group_key, detail FROM findings "
                    "WHERE check_id = 'patient_id_inconsistent_demographics'")
    assert {s for s, _, _ in got} == set(sops)
    assert {k for _, k, _ in got} == {"PSEX"}
    (detail,) = {d for _, _, d in got}
    assert "2 values of PatientSex" in detail
    assert "SEX^TEST / 19700101 / M (2)" in detail and "SEX^TEST / 19700101 / F (1)" in detail, detail
    assert "(no sex) (1)" in detail
    assert {d for s, d in rows(idx, "SELECT sop_instance_uid, disposition FROM plan") if s in sops} == {"hold"}


def test_retired_sop_class_is_named_retired(tmp_path, cli) -> None:
    root = tmp_path / "src"
    root.mkdir()
    uid, rng = _UIDs(random.Random(4)), np.random.default_rng(4)
    retired = "1.2.840.10008.5.1.4.1.1.6"  # Ultrasound Image Storage (Retired)
    _write(root, uid, rng, 1, "O", sop_class=retired)
    idx = tmp_path / "r.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    assert rows(idx, "SELECT name, retired FROM sop_classes WHERE uid = $u", {"u": retired}) == [
        ("Ultrasound Image Storage (Retired)", True)]
    (d,) = rows(idx, "SELECT detail FROM findings WHERE check_id = 'private_sop_class'")[0]
    assert "Ultrasound Image Storage (Retired)" in d
    # the names of current classes are untouched
    assert rows(idx, "SELECT name FROM sop_classes WHERE uid = '1.2.840.10008.5.1.4.1.1.2'") == [("CT Image Storage",)]
