"""The README documents every command and every index column (keeps the docs honest)."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from pacscopy.cli import app
from pacscopy.index import migrate

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_command_is_documented() -> None:
    import typer.main

    group = typer.main.get_command(app)
    names = sorted(group.commands)  # type: ignore[attr-defined]
    assert "scan" in names and "query" in names
    for name in names:
        assert f"`pacscopy {name}" in README, f"command {name} is not in the README"


def test_every_column_is_documented() -> None:
    con = duckdb.connect()
    migrate(con)
    cols = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal AND schema_name = 'main'"
    ).fetchall()
    assert len(cols) > 30
    for table, column in cols:
        assert re.search(rf"`{table}`", README), f"table {table} is not in the README"
        assert re.search(rf"\b{column}\b", README), f"column {table}.{column} is not in the README"


def test_readme_shows_the_two_commands() -> None:
    assert README.index("scripts/demo") < README.index("## Commands")
    assert "scripts/test" in README
