"""What the CLI itself owns: the owner-only umask for everything pacscopy writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pacscopy import cli


def test_scan_sets_the_owner_only_umask(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    (root / "a.dcm").write_bytes(b"not dicom")
    index = tmp_path / "x.duckdb"
    old = os.umask(0o022)
    try:
        cli.main(["scan", str(root), "--index", str(index), "-q", "--workers", "1"])
        assert os.umask(0o022) == 0o077
    finally:
        os.umask(old)
    assert stat.S_IMODE(index.stat().st_mode) == 0o600
