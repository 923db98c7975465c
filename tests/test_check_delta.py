"""Incremental check (issue 12 item 2): after a delta scan, check re-evaluates only the groups of the
changed files, and gives what a full check gives, finding for finding and plan row for plan row."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from pacscopy.check.checks import CheckResult, run_checks
from pacscopy.index import open_index
from pacscopy.scan.scan import scan
from pacscopy.testing.synth import make_archive

FINDINGS = ("SELECT check_id, severity, path, sop_instance_uid, group_key, detail, recoverable "
            "FROM findings ORDER BY ALL")
PLAN = "SELECT * FROM plan_auto ORDER BY ALL"
PLAN_VIEW = ("SELECT sop_instance_uid, path, disposition, why, decided, auto_disposition FROM plan "
             "ORDER BY ALL")


def snapshot(index: Path) -> dict[str, list[tuple]]:
    with open_index(str(index)) as con:
        return {q: con.execute(q).fetchall() for q in (FINDINGS, PLAN, PLAN_VIEW)}


def copy_index(index: Path, dst: Path) -> Path:
    shutil.copy(index, dst)
    if os.path.exists(f"{index}.wal"):
        shutil.copy(f"{index}.wal", f"{dst}.wal")
    return dst


class Delta:
    """One archive and its index, checked incrementally; every check compared with a full one."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.root = tmp_path / "arch"
        make_archive(self.root, patients=3, studies_per_patient=2, series_per_study=2, instances_per_series=3)
        self.index = tmp_path / "delta.duckdb"
        self.n = 0

    def check(self, *, rescan: bool = True) -> CheckResult:
        """Rescan, then check incrementally; assert a full check of the same index gives the same."""
        if rescan:
            scan([self.root], str(self.index))
        self.n += 1
        ref = copy_index(self.index, self.tmp / f"ref{self.n}.duckdb")
        with open_index(str(self.index)) as con:
            res = run_checks(con)
        with open_index(str(ref)) as con:
            full = run_checks(con, full=True)
        assert full.mode == "full" and full.why == "--full"
        got, want = snapshot(self.index), snapshot(ref)
        for q in want:
            assert got[q] == want[q], f"step {self.n}: delta differs from full in {q.split()[3]}"
        return res

    def part10(self, where: str = "TRUE") -> list[tuple[str, str]]:
        """(path, sop) of sound Part 10 files with a single copy, first path first."""
        with open_index(str(self.index)) as con:
            return con.execute(
                "SELECT path, sop_instance_uid FROM files f WHERE status = 'ok' AND has_meta "
                "AND transfer_syntax_uid = '1.2.840.10008.1.2.1' AND starts_with(path, $root) "
                f"AND (SELECT count(*) FROM files g WHERE g.sop_instance_uid = f.sop_instance_uid) = 1 AND {where} "
                "ORDER BY path", {"root": str(self.root) + "/vol1/PID"}).fetchall()


def rewrite(path: str | Path, dest: str | Path | None = None, **attrs: object) -> None:
    """Rewrite a file (or write a changed copy to ``dest``) with some attributes changed; mtime moves on."""
    ds = pydicom.dcmread(path, force=True)
    for k, v in attrs.items():
        setattr(ds, k, v)
    if "SOPInstanceUID" in attrs and "MediaStorageSOPInstanceUID" in ds.file_meta:
        ds.file_meta.MediaStorageSOPInstanceUID = attrs["SOPInstanceUID"]
    out = Path(dest or path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=False)
    st = os.stat(out)
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


@pytest.mark.parametrize("copy_share, whole_share", [
    (0.05, 0.5),   # as shipped: in this small archive the groups are large shares, read whole or by join
    (1.0, 1.0),    # every changed group's files copied once and read from the copy
    (0.0, 1.0),    # every group read from files through the join with the changed keys
    (0.0, 0.0),    # every group read whole
], ids=["default", "copy", "join", "whole"])
def test_delta_check_equals_full_check_after_every_kind_of_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   copy_share: float, whole_share: float) -> None:
    from pacscopy.check import checks

    monkeypatch.setattr(checks, "COPY_SHARE", copy_share)
    monkeypatch.setattr(checks, "WHOLE_SHARE", whole_share)
    d = Delta(tmp_path)
    first = d.check()  # the index's first check: a full one (nothing known about what changed)
    assert first.mode == "full" and first.why == "first check of this index"

    nothing = d.check()
    assert nothing.mode == "delta" and nothing.changed == 0 and nothing.scope_files == 0

    # A corrected PatientName in one file: the patient's demographics now disagree (held).
    with open_index(str(d.index)) as con:
        row = con.execute("SELECT count(*) FROM files").fetchone()
    assert row is not None
    total = row[0]
    path0, _ = d.part10()[0]
    pid0 = pydicom.dcmread(path0).PatientID
    rewrite(path0, PatientName="DOE^CORRECTED")
    res = d.check()
    assert res.mode == "delta" and res.changed == 1
    assert 0 < res.scope_files < total  # only the groups of that file, not the archive
    with open_index(str(d.index)) as con:
        held = con.execute("SELECT count(*) FROM findings WHERE check_id = 'patient_id_inconsistent_demographics' "
                           "AND group_key = $p", {"p": pid0}).fetchone()
    assert held is not None and held[0] > 1

    # The usual patient update: the same correction in all the patient's files (the detail's variants change).
    with open_index(str(d.index)) as con:
        theirs = [r[0] for r in con.execute("SELECT path FROM files WHERE patient_id = $p AND status = 'ok' "
                                            "AND path <> $p0 AND starts_with(path, $r)",
                                            {"p": pid0, "p0": path0, "r": str(d.root / "vol1" / pid0)}).fetchall()]
    for p in theirs:
        rewrite(p, PatientName="DOE^CORRECTED")
    res = d.check()
    assert res.mode == "delta" and res.changed == len(theirs)

    # A changed StudyInstanceUID: one file moved into another patient's study.
    other = d.part10(f"patient_id <> '{pid0}'")[-1][0]
    victim = d.part10(f"patient_id = '{pid0}'")[-1][0]
    rewrite(victim, StudyInstanceUID=pydicom.dcmread(other).StudyInstanceUID)
    res = d.check()
    assert res.mode == "delta"
    with open_index(str(d.index)) as con:
        n = con.execute("SELECT count(*) FROM findings WHERE check_id = 'study_uid_multiple_patients'").fetchone()
    assert n is not None and n[0] > 0

    # New files: a new study of a new patient.
    src = d.part10()[1][0]
    study, series = generate_uid(), generate_uid()
    for i in range(3):
        rewrite(src, d.root / "vol2" / f"NEW{i}.dcm", SOPInstanceUID=generate_uid(), StudyInstanceUID=study,
                SeriesInstanceUID=series, PatientID="PIDNEW", PatientName="NEW^PATIENT", AccessionNumber="ACCNEW")
    res = d.check()
    assert res.mode == "delta" and res.changed == 3

    # A new duplicate (identical copy) and a new conflicting copy (content differs: hashed, then held).
    dup_src, _ = d.part10()[2]
    shutil.copy(dup_src, d.root / "vol2" / "COPY.dcm")
    conf_src = d.root / "vol2" / "NEW0.dcm"  # of the new patient: sendable until now
    conf_sop = str(pydicom.dcmread(conf_src).SOPInstanceUID)
    rewrite(conf_src, d.root / "vol2" / "CONFLICT.dcm", SeriesDescription="A DIFFERENT SERIES")
    res = d.check()
    assert res.mode == "delta" and res.hashed >= 2
    with open_index(str(d.index)) as con:
        disp = con.execute("SELECT disposition FROM plan_auto WHERE sop_instance_uid = $s", {"s": conf_sop}).fetchone()
    assert disp == ("hold",)

    # The conflict resolved: the conflicting copy removed (vanished), the instance sendable again.
    (d.root / "vol2" / "CONFLICT.dcm").unlink()
    res = d.check()
    assert res.mode == "delta"
    with open_index(str(d.index)) as con:
        disp = con.execute("SELECT disposition FROM plan_auto WHERE sop_instance_uid = $s", {"s": conf_sop}).fetchone()
    assert disp == ("send",)

    # A vanished file (its only copy): deleted in the source.
    gone = d.root / "vol2" / "NEW2.dcm"
    gone_sop = str(pydicom.dcmread(gone).SOPInstanceUID)
    os.unlink(gone)
    res = d.check()
    assert res.mode == "delta" and res.changed == 1
    with open_index(str(d.index)) as con:
        disp = con.execute("SELECT disposition FROM plan_auto WHERE sop_instance_uid = $s", {"s": gone_sop}).fetchone()
    assert disp == ("deleted",)

    # A new decision: the plan view applies it; check has nothing to re-evaluate.
    from pacscopy.check.decisions import Decision, record_decisions

    with open_index(str(d.index)) as con:
        record_decisions(con, [Decision(d.part10()[5][1], "skip", "not needed")])
    res = d.check(rescan=False)
    assert res.mode == "delta" and res.changed == 0


def test_manifest_load_makes_a_full_check_then_deltas_keep_the_manifest_checks(tmp_path: Path) -> None:
    d = Delta(tmp_path)
    d.check()
    rows = d.part10()
    csv = tmp_path / "db.csv"
    with open_index(str(d.index)) as con:
        recs = con.execute("SELECT sop_instance_uid, patient_id, patient_name FROM files WHERE status = 'ok' "
                           "AND sop_instance_uid IS NOT NULL ORDER BY path").fetchall()
    # every instance but the last (an orphan), one with another name (demographics), one unknown (no file)
    lines = ["sop_instance_uid,patient_id,patient_name,state,location"]
    for i, (sop, pid, name) in enumerate(dict.fromkeys(recs)):
        if i == len(recs) - 1:
            break
        lines.append(f"{sop},{pid},{'OTHER^NAME' if i == 0 else name},online,tape1")
    lines.append("1.2.3.999999,PIDX,X^Y,online,tape2")
    csv.write_text("\n".join(lines) + "\n")
    from pacscopy.manifest import load_manifest

    with open_index(str(d.index)) as con:
        load_manifest(con, csv)
    res = d.check(rescan=False)
    assert res.mode == "full" and "manifest" in res.why
    rewrite(rows[0][0], PatientName="DOE^AGAIN")
    rewrite(rows[1][0], d.root / "vol2" / "ORPHAN.dcm", SOPInstanceUID=generate_uid())
    res = d.check()
    assert res.mode == "delta" and res.changed == 2
    with open_index(str(d.index)) as con:
        n = con.execute("SELECT count(*) FROM findings WHERE check_id = 'file_without_manifest'").fetchone()
    assert n is not None and n[0] >= 1


def test_rehash_and_new_check_sql_make_a_full_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = Delta(tmp_path)
    d.check()
    scan([d.root], str(d.index), rehash=True)
    res = d.check(rescan=False)
    assert res.mode == "full" and "too many files" in res.why
    from pacscopy.check import checks

    real = checks.load_sql

    def patched(name: str) -> str:
        text = real(name)
        return text + "\n" if name == "checks/invalid_uid" else text

    monkeypatch.setattr(checks, "load_sql", patched)
    res = d.check(rescan=False)
    assert res.mode == "full" and "checks" in res.why


def test_cli_check_full_and_incremental(tmp_path: Path, cli) -> None:
    root = tmp_path / "arch"
    make_archive(root, patients=2, studies_per_patient=1, series_per_study=1, instances_per_series=3,
                 defects=False, conflicts=False, specials=False)
    idx = str(tmp_path / "i.duckdb")
    assert cli("scan", str(root), "--index", idx, "-q").code == 0
    r = cli("check", "--index", idx)
    assert r.code == 0 and "full check (first check of this index)" in r.out
    r = cli("check", "--index", idx)
    assert r.code == 0 and "incremental check: no file changed since the last check" in r.out
    r = cli("check", "--index", idx, "--full")
    assert r.code == 0 and "full check (--full)" in r.out
    one = sorted(root.rglob("*.dcm"))[0]
    rewrite(one, PatientName="DOE^FIXED")
    assert cli("scan", str(root), "--index", idx, "-q").code == 0
    r = cli("check", "--index", idx)
    assert r.code == 0 and "incremental check: 1 changed file(s)" in r.out


KILLER = """
import os, signal, sys
from pacscopy.check import checks
from pacscopy.index import open_index
real = checks.run_script
seen = []
def run_script(con, name, params=None):
    real(con, name, params)
    if name == "ops/check/delta_apply":
        seen.append(name)
        if len(seen) == 3:  # mid-transaction: some findings replaced already
            os.kill(os.getpid(), signal.SIGKILL)
checks.run_script = run_script
with open_index(sys.argv[1]) as con:
    checks.run_checks(con)
"""


def test_kill_9_mid_check_leaves_the_previous_state(tmp_path: Path) -> None:
    d = Delta(tmp_path)
    d.check()
    rewrite(d.part10()[0][0], PatientName="DOE^KILLED")
    scan([d.root], str(d.index))
    with open_index(str(d.index)) as con:
        before = {q: con.execute(q).fetchall() for q in (FINDINGS, PLAN, "SELECT * FROM check_dirty ORDER BY ALL",
                                                          "SELECT * FROM check_state")}
    assert before["SELECT * FROM check_dirty ORDER BY ALL"]
    p = subprocess.run([sys.executable, "-c", KILLER, str(d.index)], capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stderr
    with open_index(str(d.index)) as con:
        after = {q: con.execute(q).fetchall() for q in before}
    assert after == before
    res = d.check(rescan=False)  # and the next check still does the delta, equal to a full one
    assert res.mode == "delta" and res.changed == 1
