"""More peers for verify's tests: a misbehaving query/retrieve SCP (tests/faulty_qr.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .peers import HERE, Peer, _run, free_port


@contextmanager
def faulty_qr(tmp: Path, mode: str, ae: str = "FAULTYQR") -> Iterator[Peer]:
    """A real pynetdicom query/retrieve SCP over a real socket that misbehaves on purpose."""
    port = free_port()
    storage = tmp / f"faultyqr-{mode}-{port}"
    storage.mkdir(parents=True)
    cmd = [sys.executable, str(HERE / "faulty_qr.py"), mode, str(port), str(storage), ae]
    with _run(cmd, ae, port, storage, tmp / f"faultyqr-{port}.log") as p:
        yield p
