"""Issue 9's hostile-input findings: unsafe maps and decisions, damaged indexes,
query side effects, bad AE titles and ports, and the small ones. Each test
failed before its fix."""

from __future__ import annotations

import os
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


# -- 5. a damaged index is refused on open ----------------------------------------------

def test_first_half_of_an_index_is_refused_by_every_command(idx, tmp_path, cli) -> None:
    data = idx.read_bytes()
    half = tmp_path / "half.duckdb"
    half.write_bytes(data[: len(data) // 2])
    src = tmp_path / "more"
    make_archive(src, patients=1, studies_per_patient=1, series_per_study=1, instances_per_series=2,
                 defects=False, conflicts=False, specials=False)
    for args in (["query", "SELECT count(*) FROM files"], ["scan", src, "-q"], ["check", "-q"], ["report"],
                 ["status", "--target", "X@127.0.0.1:104"]):
        r = cli(*args, "--index", half)
        assert r.code == 2, (args, r.err)
        msg = one_line(r.err)
        assert f"index {half} is damaged" in msg and "restore your backup copy" in msg and "rescan into a new index" in msg
    assert half.read_bytes() == data[: len(data) // 2]  # nothing written into it


def test_index_open_messages_are_distinct(tmp_path, cli) -> None:
    r = cli("query", "SELECT 1", "--index", tmp_path / "nowhere" / "i.duckdb")
    assert r.code == 2 and "the folder" in one_line(r.err) and "does not exist" in r.err
    r = cli("scan", tmp_path, "-q", "--index", tmp_path / "nowhere" / "i.duckdb")
    assert r.code == 2 and "does not exist" in one_line(r.err)
    text = tmp_path / "notes.txt"
    text.write_text("not an index\n" * 1000)
    r = cli("query", "SELECT 1", "--index", text)
    assert r.code == 2 and "is not a pacscopy index (not a DuckDB file" in one_line(r.err)


def _as_nobody(*args: str) -> "subprocess.CompletedProcess[str]":
    """Run the CLI as user nobody (the tests run as root, who may read anything)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pacscopy", *map(str, args)]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd="/")


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"), reason="needs setpriv to drop root")
def test_permission_denied_is_not_called_not_an_index(idx) -> None:
    import tempfile

    box = Path(tempfile.mkdtemp(prefix="pacscopy-perm-", dir="/tmp"))
    try:
        box.chmod(0o755)
        shutil.copy(idx, box / "i.duckdb")
        (box / "i.duckdb").chmod(0o600 if os.geteuid() == 0 else 0o000)
        r = _as_nobody("query", "SELECT 1", "--index", box / "i.duckdb")
        assert r.returncode == 2 and "permission denied: cannot read index" in one_line(r.stderr), r.stderr
        (box / "i.duckdb").chmod(0o644)
        box.chmod(0o700 if os.geteuid() == 0 else 0o000)
        r = _as_nobody("query", "SELECT 1", "--index", box / "i.duckdb")
        assert r.returncode == 2 and "permission denied: cannot reach" in one_line(r.stderr), r.stderr
    finally:
        box.chmod(0o700)
        shutil.rmtree(box)


# -- 6. query: no file access; --out ----------------------------------------------------

@pytest.mark.parametrize("sql", [
    "COPY files TO '{d}/leak.csv'",
    "COPY (SELECT path FROM files) TO '{d}/leak.csv'",
    "EXPORT DATABASE '{d}/leak'",
    "SELECT * FROM read_csv('{d}/leak.csv')",
    "INSTALL httpfs",
    "SET enable_external_access = true; COPY files TO '{d}/leak.csv'",
    "ATTACH '{d}/leak.duckdb'",
])
def test_query_cannot_touch_files(idx, tmp_path, cli, sql) -> None:
    d = tmp_path / "out"
    d.mkdir()
    (d / "leak.csv").write_text("keep me\n") if "read_csv" in sql else None
    r = cli("query", sql.format(d=d), "--index", idx)
    assert r.code == 2
    assert "query has no access to files" in one_line(r.err) and "--out FILE" in r.err
    assert sorted(p.name for p in d.iterdir()) == (["leak.csv"] if "read_csv" in sql else [])


def test_shipped_queries_run_with_file_access_off(idx, cli) -> None:
    from pacscopy.index import named_queries

    for name in named_queries():
        args = ["-p", "uid=1.2.3"] if name == "study" else []
        r = cli("query", name, "--index", idx, *args)
        assert r.code == 0, (name, r.err)


def test_query_out_writes_a_private_file_atomically(idx, tmp_path, cli) -> None:
    out = tmp_path / "per_volume.csv"
    out.write_text("old export\n")
    out.chmod(0o644)
    r = cli("query", "SELECT volume, count(*) AS n FROM files GROUP BY 1", "--format", "csv", "--out", out,
            "--index", idx)
    assert r.code == 0 and r.out == "" and f"wrote {out}" in r.err
    assert out.read_text().splitlines()[0] == "volume,n"
    assert out.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


def test_query_file_not_utf8_is_named(idx, tmp_path, cli) -> None:
    f = tmp_path / "q.sql"
    f.write_bytes("SELECT 'Müller'".encode("latin-1"))
    r = cli("query", "-f", f, "--index", idx)
    assert r.code == 2 and f"SQL file {f} is not UTF-8 text" in one_line(r.err)


# -- 8. the smaller ones ---------------------------------------------------------------

def test_report_out_replaces_a_0644_file_with_a_0600_one(idx, tmp_path, cli) -> None:
    out = tmp_path / "r.html"
    out.write_text("old")
    out.chmod(0o644)
    r = cli("report", "--format", "html", "--out", out, "--index", idx)
    assert r.code == 0
    assert out.stat().st_mode & 0o777 == 0o600 and out.read_text().lstrip().lower().startswith("<!doctype html")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_report_out_on_a_full_disk_leaves_the_old_file(tmp_path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    from pacscopy.errors import InputError
    from pacscopy.output.outfile import write_private

    out = tmp_path / "r.txt"
    out.write_text("the previous report\n")
    real_fdopen = os.fdopen

    def full(fd: int, *a, **k):  # every write goes to /dev/full: ENOSPC, as on a full disk
        full_fd = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full_fd, fd)
        os.close(full_fd)
        return real_fdopen(fd, *a, **k)

    os.fdopen = full  # type: ignore[assignment]
    try:
        with pytest.raises(InputError, match="No space left on device"):
            write_private(out, "x" * 100_000)
    finally:
        os.fdopen = real_fdopen
    assert out.read_text() == "the previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.txt"]


def test_a_path_with_a_newline_is_one_table_row(tmp_path, cli) -> None:
    src = tmp_path / "src"
    make_archive(src, patients=1, studies_per_patient=1, series_per_study=1, instances_per_series=1,
                 defects=False, conflicts=False, specials=False)
    f = sorted(p for p in src.rglob("*.dcm") if p.is_file())[0]
    f.rename(f.with_name("two\nlines.dcm"))
    idx = tmp_path / "i.duckdb"
    assert cli("scan", src, "--index", idx, "-q").code == 0
    r = cli("query", "SELECT replace(path, $root, '') AS p FROM files WHERE path LIKE '%lines.dcm'", "-p",
            f"root={src}", "--index", idx)
    assert r.code == 0
    assert r.out.splitlines()[2].endswith("two\\nlines.dcm") and r.out.splitlines()[3] == "(1 row)"


# -- 7. one line, exit code 2, never a traceback ---------------------------------------

T = "X@127.0.0.1:104"


@pytest.mark.parametrize("args,needle", [
    (["probe", "--target", T, "--calling-ae", "A" * 17], "--calling-ae 'AAAAAAAAAAAAAAAAA' is 17 characters long: at most 16"),
    (["verify", "--target", T, "--calling-ae", "A" * 17], "is 17 characters long"),
    (["reconcile", "--target", T, "--calling-ae", "A" * 17], "is 17 characters long"),
    (["send", "--target", T, "--calling-ae", "A" * 17], "is 17 characters long"),
    (["send", "--target", T, "--calling-ae", ""], "--calling-ae '' is empty"),
    (["send", "--target", T, "--calling-ae", "    "], "is empty"),
    (["probe", "--target", T, "--calling-ae", "PÄCS"], "outside the DICOM default repertoire"),
    (["probe", "--target", T, "--calling-ae", "A\\B"], "contains a backslash"),
    (["send", "--target", "ÄRCHIV@127.0.0.1:104"], "AE title 'ÄRCHIV' has characters outside the DICOM default"),
    (["send", "--target", "ABCDEFGHIJKLMNOPQ@127.0.0.1:104"], "is 17 characters long"),
    (["status", "--target", "X@127.0.0.1:0"], "is not AE@host:port"),
    (["probe", "--target", "X@no-such-host.invalid:104"], "host 'no-such-host.invalid' does not resolve"),
    (["verify", "--target", "X@no-such-host.invalid:104"], "does not resolve"),
    (["send", "--target", T, "--timeout", "-1"], "--timeout -1.0 must be a positive number of seconds"),
    (["probe", "--target", T, "--timeout", "0"], "must be a positive number"),
    (["verify", "--target", T, "--port", "70000"], "--port 70000 is not a port (0-65535)"),
    (["receive", "--port", "0", "--storage", "{tmp}/rx", "--ae", "A" * 17], "--ae 'AAAAAAAAAAAAAAAAA' is 17"),
    (["receive", "--port", "70000", "--storage", "{tmp}/rx"], "--port 70000 is not a port"),
    (["receive", "--port", "0", "--storage", "{tmp}/rx", "--host", "no-such-host.invalid"], "does not resolve"),
    (["receive", "--port", "0", "--storage", "{tmp}/rx", "--commit-reply", "A@no-such-host.invalid:1"],
     "does not resolve"),
])
def test_bad_values_are_one_line_and_exit_2(idx, tmp_path, cli, args, needle) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    before = rows(idx, "SELECT count(*) FROM transfers")
    r = cli(*args, *([] if args[0] == "receive" else ["--index", idx]))
    assert r.code == 2, r
    assert needle in one_line(r.err)
    assert rows(idx, "SELECT count(*) FROM transfers") == before
    assert rows(idx, "SELECT count(*) FROM send_runs") == [(0,)]


@pytest.mark.parametrize("cmd", ["map", "decide"])
def test_csv_not_utf8_is_named(idx, tmp_path, cli, cmd) -> None:
    f = tmp_path / "in.csv"
    header = "old_id,new_id\n" if cmd == "map" else "sop_instance_uid,action,note\n"
    f.write_bytes(header.encode() + "1.2.3,hold,Müller asked\n".encode("latin-1"))
    r = cli(cmd, "--csv", f, "--index", idx)
    assert r.code == 2
    assert f"file {f} is not UTF-8 text (line 2" in one_line(r.err)


def test_unforeseen_index_errors_exit_2_like_every_error(idx, cli, monkeypatch) -> None:
    import duckdb

    from pacscopy.check import checks

    def boom(*a, **k):
        raise duckdb.ConversionException("Conversion Error: something nobody foresaw")

    monkeypatch.setattr(checks, "run_checks", boom)
    r = cli("check", "--index", idx, "-q")
    assert r.code == 2
    assert "index: Conversion Error: something nobody foresaw" in one_line(r.err)


@pytest.fixture
def many(tmp_path: Path, cli) -> Path:
    """80 instances, checked: enough for 3 associations of 32-instance batches."""
    root = tmp_path / "src"
    make_archive(root, patients=2, studies_per_patient=1, series_per_study=2, instances_per_series=20,
                 defects=False, conflicts=False, specials=False)
    idx = tmp_path / "many.duckdb"
    assert cli("scan", root, "--index", idx, "-q").code == 0
    assert cli("check", "--index", idx, "-q").code == 0
    return idx


def test_a_target_that_is_down_ends_as_target_down_every_time(many, cli) -> None:
    from .peers import free_port

    port = free_port()  # nothing listens: connection refused
    for _ in range(3):
        r = cli("send", "--target", f"NOBODY@127.0.0.1:{port}", "--index", many, "-q", "--associations", "3",
                "--wait-for-target", "0.5", "--retries", "0")
        assert r.code == 1 and "Traceback" not in r.err
        assert r.out.splitlines()[0].endswith(": target_down"), r.out
    assert rows(many, "SELECT DISTINCT outcome FROM send_runs") == [("target_down",)]


def test_failed_association_attempts_record_when_they_began(planned, cli) -> None:
    import socket

    silent = socket.socket()  # accepts the TCP connection (backlog), never answers the A-ASSOCIATE-RQ
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        r = cli("send", "--target", f"SILENT@127.0.0.1:{silent.getsockname()[1]}", "--index", planned, "-q",
                "--timeout", "0.5", "--wait-for-target", "0.8", "--retries", "0", "--associations", "1")
    finally:
        silent.close()
    assert r.code == 1 and "target_down" in r.out
    got = rows(planned, "SELECT count(*), min(epoch(finished) - epoch(started)) FROM transfers WHERE outcome = 'retry'")
    assert got[0][0] >= 1 and got[0][1] >= 0.4, got


def _tmpfs(path: Path, size: str) -> bool:
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _fill(folder: Path) -> None:
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def test_a_full_index_disk_during_send_names_the_real_cause(planned, tmp_path) -> None:
    import subprocess

    from pacscopy import index as idxmod
    from pacscopy.dicom.peer import Target
    from pacscopy.receive import Receiver
    from pacscopy.send.options import SendOptions
    from pacscopy.send.send import send

    disk = tmp_path / "disk"
    if not _tmpfs(disk, "8m"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        shutil.copy(planned, disk / "i.duckdb")
        rx = Receiver(tmp_path / "rx")
        port = rx.start()
        con = idxmod.open_index(str(disk / "i.duckdb"))
        filled = []

        def fill_once(msg: dict) -> None:
            if not filled:
                _fill(disk)
                filled.append(True)

        try:
            with pytest.raises(Exception) as e:
                send(con, Target("RX", "127.0.0.1", port), SendOptions(associations=1, retries=0),
                     on_progress=fill_once)
        finally:
            rx.stop()
            try:
                con.close()
            except Exception:
                pass
        assert filled
        assert "No space left on device" in str(e.value), e.value
        assert "cannot rollback" not in str(e.value)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_receive_removes_half_written_files_at_start(tmp_path) -> None:
    from pacscopy.receive import Receiver

    store = tmp_path / "rx"
    store.mkdir()
    (store / ".1.2.3.140245.part").write_bytes(b"\0" * 1000)  # left by a receiver that hit a full disk
    (store / "keep.txt").write_text("not ours to delete")
    rx = Receiver(store)
    rx.start()
    rx.stop()
    assert sorted(p.name for p in store.iterdir()) == ["keep.txt"]
