"""A real PostgreSQL for the tests, started by scripts/postgres (the helper users run) on a free port.

One server per test session (``pg_server``), a fresh database per test (``pg_url``). A test that
stops PostgreSQL mid-send starts its own server (``PgServer.start``). When PostgreSQL cannot be
installed here (no root, no apt), the tests that need it are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "postgres"
_dbs = itertools.count(1)


class PgServer:
    """A cluster in a folder of its own, run by scripts/postgres."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = ""

    @classmethod
    def start_new(cls) -> PgServer:
        # under /var/tmp, not pytest's tmp_path: as root the server runs as 'postgres', who cannot enter root's 0700 folders
        base = Path("/var/tmp") if Path("/var/tmp").is_dir() else Path(tempfile.gettempdir())
        server = cls(Path(tempfile.mkdtemp(prefix="pacscopy-pg-", dir=base)))
        server.start()
        return server

    def _script(self, cmd: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), cmd, str(self.folder)], capture_output=True, text=True, timeout=600)

    def start(self) -> str:
        p = self._script("start")
        if p.returncode == 3:
            pytest.skip(f"PostgreSQL cannot be installed here: {p.stderr.strip()}")
        if p.returncode != 0:
            log = self.folder / "server.log"
            raise RuntimeError(f"scripts/postgres start failed: {p.stderr.strip()}\n"
                               f"{log.read_text() if log.exists() else ''}")
        self.url = p.stdout.strip().splitlines()[-1]
        return self.url

    def stop(self) -> None:
        self._script("stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        u = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, "", ""))

    def new_database(self) -> str:
        """A fresh empty database on this server; its URL."""
        import psycopg

        name = f"t{next(_dbs)}"
        with psycopg.connect(self.url, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name}")  # a name from the counter, not user input
            con.execute(f"CREATE DATABASE {name}")
        return self.database_url(name)


@contextlib.contextmanager
def _server() -> Iterator[PgServer]:
    """A server of its own for the block, removed after (the test is skipped without psycopg)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'pacscopy[postgres]'")
    server = PgServer.start_new()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    with _server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh database on the session's PostgreSQL."""
    return pg_server.new_database()


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    """A PostgreSQL of the test's own (to stop and start it again)."""
    with _server() as server:
        yield server
