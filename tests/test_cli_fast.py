"""The plain ``scan`` command line is parsed without typer: it must mean exactly what typer reads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pacscopy import cli

PLAIN = [
    ["scan", "a"],
    ["scan", "a", "b", "c"],
    ["scan", "a", "--index", "x.duckdb"],
    ["scan", "--index=x.duckdb", "a"],
    ["scan", "a", "--index", "x.duckdb", "-q", "--rehash"],
    ["scan", "-q", "a", "--workers", "3", "b"],
    ["scan", "a", "--workers=1", "--volume", "tape 7", "--quiet"],
    ["scan", "--volume=v=1", "a"],
    ["scan", "--", "-odd-name", "a"],
    ["scan", "a", "--rehash", "--", "--index"],
    ["scan", "ünïcode/vol", "--index", "/tmp/ä.duckdb"],
]
TYPER_ONLY = [
    ["scan"],
    ["scan", "--help"],
    ["scan", "-h"],
    ["scan", "a", "--workers", "0"],
    ["scan", "a", "--workers", "two"],
    ["scan", "a", "--workers", "03"],
    ["scan", "a", "--index", "x", "--index", "y"],
    ["scan", "a", "-q", "-q"],
    ["scan", "a", "--bogus"],
    ["scan", "a", "-qh"],
    ["scan", "a", "--index"],
    ["scan", "a", "--index", "--rehash"],
    ["scan", "a", "--index="],
    ["scan", ""],
    ["--version", "scan", "a"],
    ["check", "a"],
]


def _typer_reads(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    got: list[dict[str, Any]] = []
    monkeypatch.setattr(cli, "_FAST_SCAN", False)
    monkeypatch.setattr(cli, "_scan", lambda **kw: got.append(kw))
    try:
        cli.main(argv)
    except SystemExit as e:
        return "exit", e.code
    finally:
        monkeypatch.setattr(cli, "_FAST_SCAN", True)
    return "scan", got[0]


@pytest.mark.parametrize("argv", PLAIN)
def test_plain_scan_is_read_as_typer_reads_it(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fast = cli._plain_scan_args(argv)
    assert fast is not None
    assert _typer_reads(argv, monkeypatch) == ("scan", fast)
    got: list[dict[str, Any]] = []
    monkeypatch.setattr(cli, "_scan", lambda **kw: got.append(kw))
    cli.main(argv)  # takes the fast path
    assert got == [fast]
    assert all(isinstance(r, Path) for r in fast["roots"])


@pytest.mark.parametrize("argv", TYPER_ONLY)
def test_everything_else_goes_to_typer(argv: list[str]) -> None:
    assert cli._plain_scan_args(argv) is None


def test_default_workers_is_the_number_of_cores() -> None:
    assert cli._plain_scan_args(["scan", "a"])["workers"] == (os.cpu_count() or 1)  # type: ignore[index]


def test_fast_path_sets_the_owner_only_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def record(**kw: Any) -> None:
        seen.append(os.umask(0o022))

    monkeypatch.setattr(cli, "_scan", record)
    old = os.umask(0o022)
    try:
        cli.main(["scan", str(tmp_path)])
    finally:
        os.umask(old)
    assert seen == [0o077]
