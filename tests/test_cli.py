"""What the CLI itself owns: the owner-only umask for everything pacscopy writes; its shape (commands only)."""

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


def test_the_cli_module_holds_commands_and_nothing_else() -> None:
    """Orchestration and wording live in the library (issue 11): every function of cli.py is a command,
    the entry point or one of its few parsing helpers, and the module stays a few hundred lines."""
    import ast
    import inspect

    import typer.main

    tree = ast.parse(inspect.getsource(cli))
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    group = typer.main.get_command(cli.app)
    commands = {c.callback.__name__ for c in group.commands.values() if c.callback is not None}
    commands |= {c.callback.__name__ for c in group.commands["books"].commands.values()}
    assert functions - commands == {"fail", "_index", "version_callback", "_root", "main"}, (
        "a helper in cli.py: orchestration belongs in the library (e.g. pacscopy/send/run.py), wording in "
        "pacscopy/output/ (summaries.py, terminal.py), parsing of values in pacscopy/validate.py")
    assert len(inspect.getsource(cli).splitlines()) < 700  # 575 in December; was 949
