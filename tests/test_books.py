"""Several machines sharing one migration through PostgreSQL (issue 13, part 2): a real PostgreSQL started
by scripts/postgres, real indexes over real synthetic volumes, the real CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pacscopy.testing.synth import make_archive
from tests.conftest import rows
from tests.peers import free_port
from tests.pg import PgServer, own_pg, pg_server, pg_url  # noqa: F401  (fixtures)

pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'pacscopy[postgres]'")

TARGET = "STORESCP@127.0.0.1:11112"


def make_hosts(base: Path, cli, n: int = 2) -> tuple[list[Path], set[str]]:
    """``n`` hosts' indexes over volumes of one synthetic archive: each host holds a share of the
    patients, and host i also holds one study of host i+1 (present on two hosts' volumes)."""
    arch = base / "arch"
    make_archive(arch, patients=2 * n, studies_per_patient=2, series_per_study=2, instances_per_series=3,
                 defects=False, conflicts=False, specials=False)
    patients = sorted(p for p in (arch / "vol1").iterdir() if p.is_dir())
    indexes = []
    for i in range(n):
        vol = base / f"host{i + 1}" / "vol"
        for p in patients[2 * i:2 * i + 2]:
            shutil.copytree(p, vol / p.name)
        nxt = patients[(2 * i + 2) % len(patients)]
        study = sorted(d for d in nxt.iterdir() if d.is_dir())[0]
        shutil.copytree(study, vol / nxt.name / study.name)  # also on the next host's volume
        index = base / f"host{i + 1}" / "index.duckdb"
        assert cli("scan", vol, "--index", index, "-q").code == 0
        assert cli("check", "--index", index, "-q").code == 0
        indexes.append(index)
    sops = {r[0] for i in indexes for r in rows(i, "SELECT sop_instance_uid FROM plan")}
    return indexes, sops


def test_scripts_postgres_starts_a_cluster_in_a_folder_and_stops_it(pg_server: PgServer) -> None:
    import psycopg

    assert pg_server.url.startswith("postgresql://pacscopy:") and "@127.0.0.1:" in pg_server.url
    with psycopg.connect(pg_server.url) as con:
        assert con.execute("SELECT current_user").fetchone() == ("pacscopy",)
        # loopback only
        assert con.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    out = subprocess.run([str(Path(__file__).parent.parent / "scripts" / "postgres"), "url", str(pg_server.folder)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == pg_server.url
    password = pg_server.folder / "password"
    assert password.stat().st_mode & 0o077 == 0  # owner-only


def test_init_join_publish_status_over_the_whole_migration(pg_url: str, tmp_path: Path, cli) -> None:
    (a, b), sops = make_hosts(tmp_path, cli)
    r = cli("books", "init", pg_url, "--name", "old PACS to new")
    assert r.code == 0, r.err
    assert "migration 'old PACS to new'" in r.out
    password = pg_url.split(":")[2].split("@")[0]
    assert password not in r.out
    again = cli("books", "init", pg_url, "--name", "another")
    assert again.code == 2 and again.err.count("\n") == 1
    assert "already hold migration 'old PACS to new'" in again.err and password not in again.err

    for host, index in (("A", a), ("B", b)):
        r = cli("books", "join", pg_url, "--index", index, "--host", host)
        assert r.code == 0, r.err
        assert f"as host '{host}'" in r.out and "published its plan" in r.out
        link = rows(index, "SELECT migration_name, books_url, host_name FROM books_link")
        assert link == [("old PACS to new", link[0][1], host)]
        assert password not in link[0][1] and link[0][1].startswith("postgresql://pacscopy@127.0.0.1:")

    r = cli("status", "--target", TARGET, "--books", pg_url)
    assert r.code == 0, r.err
    # every instance of both hosts' plans counted once, those on both volumes too
    assert f"{len(sops)} instances in the plans of 2 host(s)" in r.out
    assert f"left:{len(sops):>26}" in r.out.replace(" " * 0, "")
    r = cli("reconcile", "--target", TARGET, "--books", pg_url, "--format", "json")
    assert r.code == 1  # nothing sent yet: not complete
    doc = json.loads(r.out)
    assert doc["in_plan"] == len(sops) and doc["states"]["left"] == len(sops) and not doc["complete"]
    r = cli("report", "--books", pg_url, "--format", "json")
    assert r.code == 0, r.err
    rep = json.loads(r.out)
    by = {(d["host"], d["disposition"]): d["instances"] for d in rep["dispositions"]}
    assert by[(None, "send")] == len(sops)  # each instance once over all hosts
    assert by[("A", "send")] + by[("B", "send")] > len(sops)  # some are on both hosts' volumes


def test_a_host_of_another_migration_is_refused(pg_server: PgServer, tmp_path: Path, cli) -> None:
    one, other = pg_server.new_database(), pg_server.new_database()
    (a,), _ = make_hosts(tmp_path, cli, n=1)
    assert cli("books", "init", one, "--name", "first").code == 0
    assert cli("books", "init", other, "--name", "second").code == 0
    assert cli("books", "join", one, "--index", a, "--host", "A").code == 0
    r = cli("books", "join", other, "--index", a, "--host", "A")
    assert r.code == 2 and r.err.count("\n") == 1 and "Traceback" not in r.err
    assert "belongs to migration 'first'" in r.err and "'second'" in r.err and "refused" in r.err
    r = cli("books", "publish", "--index", a, "--books", other)
    assert r.code == 2 and "belongs to migration 'first'" in r.err
    r = cli("send", "--target", TARGET, "--index", a, "--books", other, "-q")
    assert r.code == 2 and r.err.count("\n") == 1 and "belongs to migration 'first'" in r.err
    assert rows(a, "SELECT count(*) FROM send_runs") == [(0,)]  # nothing started
    assert rows(a, "SELECT migration_name FROM books_link") == [("first",)]  # the link stays


def test_a_host_name_is_taken_once(pg_url: str, tmp_path: Path, cli) -> None:
    (a, b), _ = make_hosts(tmp_path, cli)
    assert cli("books", "init", pg_url, "--name", "m").code == 0
    assert cli("books", "join", pg_url, "--index", a, "--host", "A").code == 0
    r = cli("books", "join", pg_url, "--index", b, "--host", "A")
    assert r.code == 2 and "host name 'A' is taken" in r.err and "--host" in r.err
    assert cli("books", "join", pg_url, "--index", a, "--host", "A").code == 0  # the same index again: fine


def test_unreachable_books_are_one_line(tmp_path: Path, cli, planned: Path) -> None:
    url = f"postgresql://pacscopy:secret@127.0.0.1:{free_port()}/pacscopy"
    for args in (("books", "init", url, "--name", "m"), ("books", "join", url, "--index", planned),
                 ("status", "--target", TARGET, "--books", url)):
        r = cli(*args)
        assert r.code == 2, args
        assert r.err.startswith("pacscopy: error: books postgresql://pacscopy@127.0.0.1:") and r.err.count("\n") == 1
        assert "unreachable" in r.err and "secret" not in r.err and "Traceback" not in r.err
    r = cli("status", "--target", TARGET, "--books", "mysql://x@y/z")
    assert r.code == 2 and "not a PostgreSQL URL" in r.err


def test_books_without_init_say_so(pg_url: str, cli, planned: Path) -> None:
    r = cli("books", "join", pg_url, "--index", planned)
    assert r.code == 2 and "hold no migration: run 'pacscopy books init" in r.err


def test_shares_overlap_by_the_chinese_remainder_theorem() -> None:
    from pacscopy.pg.books import Shard

    assert not Shard(1, 2).overlaps(Shard(2, 2))
    assert Shard(1, 2).overlaps(Shard(1, 2))
    assert Shard(1, 2).overlaps(Shard(1, 3))  # hash 0 mod 6 is in both
    assert not Shard(1, 2).overlaps(Shard(2, 4))  # 1 mod 4 is odd: never 0 mod 2
    assert Shard(2, 2).overlaps(Shard(2, 4))
    with pytest.raises(Exception, match="K must be between 1 and N"):
        Shard.parse("3/2")

