"""`pacscopy query`, named SQL, and bad input: one line on stderr, exit 2, index unchanged."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pacscopy import index as idx

from .conftest import rows


def _one_line(err: str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_every_named_query_runs(scanned, cli) -> None:
    names = idx.named_queries()
    assert {"corrupt_files", "studies_per_year", "status_summary", "duplicate_sop_instances"} <= set(names)
    for name, path in names.items():
        args = ["query", name, "--index", scanned]
        if "$uid" in path.read_text():
            (uid,) = rows(scanned, "SELECT any_value(study_instance_uid) FROM files WHERE status='ok'")[0]
            args += ["-p", f"uid={uid}"]
        r = cli(*args)
        assert r.code == 0, (name, r.err)
        assert "row" in r.out
        assert idx.description(path.read_text()), f"{name} has no description comment"


def test_named_query_results(scanned, cli) -> None:
    r = cli("query", "corrupt_files", "--index", scanned, "--format", "json")
    data = json.loads(r.out)
    reasons = {d["reason"] for d in data}
    assert {"truncated", "zero_block", "encoding_mismatch", "empty"} <= reasons
    assert all(d["status"] in ("corrupt", "suspect", "unreadable") for d in data)
    r = cli("query", "SELECT status, count(*) AS n FROM files GROUP BY 1 ORDER BY 1", "--index", scanned,
            "--format", "csv")
    got = {row["status"]: int(row["n"]) for row in csv.DictReader(io.StringIO(r.out))}
    assert got["skipped"] >= 5 and got["ok"] >= 36


def test_query_list_and_file(scanned, cli, tmp_path) -> None:
    r = cli("query", "--list")
    assert "studies_per_year" in r.out and "Studies, instances" in r.out
    f = tmp_path / "q.sql"
    f.write_text("-- count\nSELECT count(*) AS n FROM files WHERE status = $s;")
    r = cli("query", "-f", f, "-p", "s=dicomdir", "--index", scanned, "--format", "json")
    assert json.loads(r.out) == [{"n": 0}]


def test_write_through_query_is_refused(scanned, cli) -> None:
    before = rows(scanned, "SELECT count(*) FROM files")
    for sql in ("DELETE FROM files", "DROP TABLE files", "UPDATE files SET status = 'ok'"):
        r = cli("query", sql, "--index", scanned)
        assert r.code == 2
        assert "read-only" in _one_line(r.err)
    assert rows(scanned, "SELECT count(*) FROM files") == before


@pytest.mark.parametrize(
    "args,needle",
    [
        (["query", "SELEC nonsense"], "SQL error"),
        (["query", "SELECT * FROM no_such_table"], "SQL error"),
        (["query"], "give SQL"),
        (["query", "x", "-p", "novalue"], "NAME=VALUE"),
        (["scan", "--bogus-flag", "x"], "No such option"),
    ],
)
def test_bad_input_is_one_clear_line(scanned, cli, args, needle) -> None:
    r = cli(*args, "--index", scanned)
    assert r.code == 2
    assert needle in _one_line(r.err)


def test_missing_root_and_missing_index(tmp_path, cli) -> None:
    index = tmp_path / "none.duckdb"
    r = cli("scan", tmp_path / "nope", "--index", index)
    assert r.code == 2 and "does not exist" in _one_line(r.err)
    assert not index.exists()
    r = cli("query", "status_summary", "--index", index)
    assert r.code == 2 and "no index at" in _one_line(r.err)
    assert not index.exists()


def test_not_an_index(tmp_path, cli) -> None:
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"this is not a database" * 100)
    for args in (["query", "status_summary"], ["scan", str(tmp_path)]):
        r = cli(*args, "--index", junk)
        assert r.code == 2 and "not a pacscopy index" in _one_line(r.err)
    assert junk.read_bytes() == b"this is not a database" * 100
    import duckdb

    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE t (x INT)")
    con.close()
    r = cli("scan", str(tmp_path / "x"), "--index", other)
    (tmp_path / "x").mkdir()
    r = cli("scan", str(tmp_path / "x"), "--index", other)
    assert r.code == 2 and "not a pacscopy index" in _one_line(r.err)


def test_index_env_var_and_real_exit_codes(tmp_path, pydicom_files) -> None:
    """Through a real process: env default, exit codes, no traceback."""
    env = {**os.environ, "PACSCOPY_INDEX": str(tmp_path / "env.duckdb")}
    r = subprocess.run([sys.executable, "-m", "pacscopy", "scan", str(pydicom_files / "dicomdirtests"), "-q"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "env.duckdb").exists()
    r = subprocess.run([sys.executable, "-m", "pacscopy", "query", "SELECT 1/0::INT AS x; DROP TABLE files"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_schema_is_versioned(scanned) -> None:
    versions = [v for (v,) in rows(scanned, "SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [v for v, _, _ in idx.migrations()]


def test_sql_ships_in_the_wheel(tmp_path) -> None:
    """Build a real wheel and check that every file under sql/ is inside it."""
    repo = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(repo)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("pacscopy-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"pacscopy/sql/{p.relative_to(repo / 'sql')}" for p in (repo / "sql").rglob("*.sql")}
    assert shipped and shipped <= names
    templates = {f"pacscopy/output/templates/{p.name}" for p in (repo / "pacscopy/output/templates").iterdir()}
    assert templates and templates <= names  # the HTML pages' templates, stylesheet and chart script
    # and the package, as unpacked from the wheel, finds them there
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    r = subprocess.run([sys.executable, "-c", "from pacscopy.index import sql_dir, load_sql; "
                        "print(sql_dir()); assert 'CREATE TABLE files' in load_sql('schema/0001_init')"],
                       capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(site)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(site / "pacscopy" / "sql")


def test_the_duckdb_cli_opens_a_new_index(planned) -> None:
    """The README's promise: the index opens in the ``duckdb`` CLI (PyPI's duckdb-cli, a test extra).

    DuckDB 2.0 would write a storage format the 1.5 CLI refuses ("version number 69"); a new index is
    written in the CLI's format. The checked index's tables, views and macros answer in the CLI.
    """
    import subprocess
    import sys

    cli_bin = Path(sys.executable).with_name("duckdb")
    if not cli_bin.exists():
        pytest.skip("the duckdb CLI is not installed (pip install duckdb-cli)")
    sql = ("SELECT count(*) AS files FROM files; "
           "SELECT count(*) AS planned FROM plan WHERE disposition = 'send'; "
           "SELECT count(*) AS states FROM final_states('X@127.0.0.1:104');")
    r = subprocess.run([str(cli_bin), "-readonly", "-csv", str(planned), "-c", sql],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[:2] == ["files", "15"] and lines[2:4] == ["planned", "15"] and lines[4] == "states", r.stdout
