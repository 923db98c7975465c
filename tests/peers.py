"""Real DICOM peers on loopback for the tests: DCMTK storescp, Orthanc, faulty pynetdicom SCPs.

Each peer runs as a subprocess on a free port, is waited for until it
answers, is checked to still be alive, shows its log on failure and is
always stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# Debian's DCMTK (and Orthanc's DICOM side) leave Nagle's algorithm on unless told.
PEER_ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"peer did not listen on {port} within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


@dataclass
class Peer:
    ae: str
    port: int
    storage: Path
    proc: subprocess.Popen
    log: Path
    http: int | None = None

    @property
    def target(self) -> str:
        return f"{self.ae}@127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def logtext(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def _run(cmd: list[str], ae: str, port: int, storage: Path, log: Path, http: int | None = None,
         wait: int | None = None, env: dict[str, str] | None = None) -> Iterator[Peer]:
    f = open(log, "wb")
    proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env or PEER_ENV, cwd=storage.parent)
    peer = Peer(ae, port, storage, proc, log, http)
    try:
        wait_port(wait or port, proc, log)
        yield peer
    except BaseException:
        sys.stderr.write(f"--- log of {' '.join(cmd[:1])} ---\n{peer.logtext()[-4000:]}\n")
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        f.close()


def need(cmd: str) -> str:
    path = shutil.which(cmd)
    if not path:
        pytest.skip(f"{cmd} is not installed (scripts/test installs it)")
    return path


@contextmanager
def storescp(tmp: Path, *extra: str, ae: str = "STORESCP", port: int | None = None) -> Iterator[Peer]:
    """DCMTK storescp, bit-preserving, accepting every transfer syntax."""
    exe = need("storescp")
    port = port or free_port()
    storage = tmp / f"storescp-{port}"
    storage.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "-aet", ae, "-od", str(storage), "+xa", "+B", *extra, str(port)]
    with _run(cmd, ae, port, storage, tmp / f"storescp-{port}.log") as p:
        yield p


@contextmanager
def orthanc(tmp: Path, *, accepted_syntaxes: list[str] | None = None, ae: str = "ORTHANC",
            extra: dict | None = None) -> Iterator[Peer]:
    """Orthanc in the foreground with a temporary configuration and storage."""
    exe = need("Orthanc")
    port, http = free_port(), free_port()
    storage = tmp / f"orthanc-{port}"
    storage.mkdir(parents=True)
    cfg = {
        "Name": "pacscopy-test", "StorageDirectory": str(storage / "db"), "IndexDirectory": str(storage / "db"),
        "DicomAet": ae, "DicomPort": port, "HttpPort": http, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "DicomCheckCalledAet": True, "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True,
        "DicomAlwaysAllowMove": True, "HttpServerEnabled": True, "Plugins": [], "ConcurrentJobs": 2,
        "StableAge": 1, "DicomScpTimeout": 30, "SaveJobs": False, "OverwriteInstances": False,
    }
    if accepted_syntaxes is not None:
        cfg["AcceptedTransferSyntaxes"] = accepted_syntaxes
    cfg.update(extra or {})
    conf = storage / "orthanc.json"
    conf.write_text(json.dumps(cfg))
    with _run([exe, str(conf)], ae, port, storage, tmp / f"orthanc-{port}.log", http=http) as p:
        wait_port(http, p.proc, p.log)
        yield p


def orthanc_get(peer: Peer, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{peer.http}{path}", timeout=30) as r:
        return r.read()


def orthanc_json(peer: Peer, path: str) -> object:
    return json.loads(orthanc_get(peer, path))


@contextmanager
def misbehaving(tmp: Path, script: str, prefix: str, mode: str, ae: str) -> Iterator[Peer]:
    """A real pynetdicom SCP (tests/SCRIPT, run as SCRIPT MODE PORT STORAGE AE) that misbehaves on purpose."""
    port = free_port()
    storage = tmp / f"{prefix}-{mode}-{port}"
    storage.mkdir(parents=True)
    cmd = [sys.executable, str(HERE / script), mode, str(port), str(storage), ae]
    with _run(cmd, ae, port, storage, tmp / f"{prefix}-{port}.log") as p:
        yield p


@contextmanager
def faulty_scp(tmp: Path, mode: str, ae: str = "FAULTY") -> Iterator[Peer]:
    """A real pynetdicom SCP over a real socket that misbehaves on purpose (tests/faulty_scp.py)."""
    with misbehaving(tmp, "faulty_scp.py", "faulty", mode, ae) as p:
        yield p


@contextmanager
def dcmqrscp(tmp: Path, ae: str = "DCMQRSCP") -> Iterator[Peer]:
    """DCMTK dcmqrscp: a query/retrieve archive that also accepts C-STORE into its storage area."""
    exe = need("dcmqrscp")
    port = free_port()
    storage = tmp / f"dcmqrscp-{port}"
    db = storage / "db"
    db.mkdir(parents=True)
    cfg = storage / "dcmqrscp.cfg"
    cfg.write_text(
        f"NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
        "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
        f"AETable BEGIN\n{ae} {db} RW (2000, 1024mb) ANY\nAETable END\n"
    )
    with _run([exe, "-c", str(cfg), "-dhl", str(port)], ae, port, storage, tmp / f"dcmqrscp-{port}.log") as p:
        yield p


@contextmanager
def qrscp(tmp: Path, ae: str = "QRSCP", move_destinations: dict[str, int] | None = None) -> Iterator[Peer]:
    """pynetdicom's own Query/Retrieve SCP app (``python -m pynetdicom qrscp``), with a configuration file.

    It needs SQLAlchemy (in the test extra); ``move_destinations`` maps AE titles to loopback ports.
    """
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        pytest.skip("pynetdicom's qrscp needs sqlalchemy (the test extra installs it)")
    port = free_port()
    storage = tmp / f"qrscp-{port}"
    (storage / "instances").mkdir(parents=True)
    lines = ["[DEFAULT]", f"ae_title: {ae}", f"port: {port}", "max_pdu: 16382", "acse_timeout: 30",
             "dimse_timeout: 30", "network_timeout: 30", "bind_address: 127.0.0.1",
             f"instance_location: {storage / 'instances'}", f"database_location: {storage / 'instances.sqlite'}",
             "log_identifier: False"]
    for dest, dport in (move_destinations or {}).items():
        lines += [f"[{dest}]", "address: 127.0.0.1", f"port: {dport}"]
    cfg = storage / "qrscp.ini"
    cfg.write_text("\n".join(lines) + "\n")
    cmd = [sys.executable, "-m", "pynetdicom", "qrscp", "-c", str(cfg), "-ll", "info"]
    with _run(cmd, ae, port, storage, tmp / f"qrscp-{port}.log") as p:
        yield p


#: tiny-pacs runs from its own virtual environment (its pydantic, peewee and pynetdicom2 stay out of
#: pacscopy's); scripts/setup creates it.
TINY_PACS = HERE.parent / ".venv-peers" / "bin" / "tiny-pacs"


@contextmanager
def tiny_pacs(tmp: Path, ae: str = "TINY_PACS", devices: dict[str, int] | None = None) -> Iterator[Peer]:
    """tiny-pacs (PyPI: a small pure-Python PACS on pynetdicom2) with files on disk and SQLite in a file.

    ``devices`` maps AE titles (C-MOVE destinations) to loopback ports."""
    if not TINY_PACS.exists():
        pytest.skip(f"tiny-pacs is not installed in {TINY_PACS.parent.parent} (scripts/setup installs it from PyPI; "
                    "it failed or had no network)")
    port = free_port()
    storage = tmp / f"tiny-pacs-{port}"
    (storage / "files").mkdir(parents=True)
    cfg = {
        "ae": {"ae_title": [ae], "port": port},
        "log": {"version": 1, "disable_existing_loggers": False,
                "formatters": {"simple": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
                "handlers": {"console": {"class": "logging.StreamHandler", "level": "INFO", "formatter": "simple",
                                         "stream": "ext://sys.stdout"}},
                "root": {"level": "INFO", "handlers": ["console"]}},
        "components": {
            "Database": {"on": True, "driver": "sqlite", "db_name": str(storage / "tiny.sqlite"), "uri": False},
            "InMemoryStorage": {"on": False},
            "FileStorage": {"on": True, "storage_dir": str(storage / "files")},
        },
    }
    if devices:
        cfg["components"]["Devices"] = {"on": True, "devices": {
            title: {"aet": title, "address": "127.0.0.1", "port": dport} for title, dport in devices.items()}}
    conf = storage / "tiny-pacs.json"
    conf.write_text(json.dumps(cfg))
    with _run([str(TINY_PACS), "run", "-c", str(conf)], ae, port, storage, tmp / f"tiny-pacs-{port}.log") as p:
        yield p
