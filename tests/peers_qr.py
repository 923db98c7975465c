"""More peers for verify's tests: a misbehaving query/retrieve SCP (tests/faulty_qr.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .peers import Peer, misbehaving


@contextmanager
def faulty_qr(tmp: Path, mode: str, ae: str = "FAULTYQR") -> Iterator[Peer]:
    """A real pynetdicom query/retrieve SCP over a real socket that misbehaves on purpose."""
    with misbehaving(tmp, "faulty_qr.py", "faultyqr", mode, ae) as p:
        yield p
