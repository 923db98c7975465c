"""The command line: parse, call the library, render, choose the exit code.

This is the only module that prints, draws progress bars or exits. Library
errors (:class:`PacscopyError`) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

from pacscopy import __version__
from pacscopy import index as idx
from pacscopy import render
from pacscopy.errors import InputError, PacscopyError

app = typer.Typer(
    name="pacscopy",
    help="Bulk copy and reconciliation for PACS migrations: scan, check, send, verify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

IndexOpt = Annotated[
    Optional[str],
    typer.Option(
        "--index",
        help="Index file (default: $PACSCOPY_INDEX, else ./pacscopy.duckdb).",
        show_default=False,
    ),
]


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"pacscopy: error: {message}", err=True)
    raise typer.Exit(code)


def _index(path: Optional[str]) -> str:
    return path or idx.default_index_path()


@app.command()
def scan(
    roots: Annotated[list[Path], typer.Argument(help="Folders (restored volumes) or files to scan.", show_default=False)],
    index: IndexOpt = None,
    volume: Annotated[Optional[str], typer.Option(help="Volume label (default: each root folder's name).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (default: number of cores).")] = os.cpu_count() or 1,
    rehash: Annotated[bool, typer.Option("--rehash", help="Re-read every file, not only changed ones.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary.")] = False,
) -> None:
    """Index every file under ROOTs: hash, header, status. Incremental on rescans."""
    from tqdm import tqdm

    from pacscopy.scan import scan_root

    for r in roots:
        if not os.path.lexists(r):
            fail(f"root {r} does not exist")
    con = idx.open_index(_index(index), create=True)
    try:
        for r in roots:
            bar: Any = None

            def on_total(files: int, nbytes: int) -> None:
                nonlocal bar
                if not quiet:
                    bar = tqdm(total=files, unit="file", desc=f"scan {r.name or r}", file=sys.stderr,
                               dynamic_ncols=True, smoothing=0.1)
                    bar.mb = 0.0

            def on_progress(files: int, nbytes: int) -> None:
                if bar is not None:
                    bar.mb += nbytes / 1e6
                    bar.update(files)
                    el = bar.format_dict.get("elapsed") or 0
                    if el and bar.n % 50 == 0:
                        bar.set_postfix_str(f"{bar.mb / el:.1f} MB/s", refresh=False)

            try:
                res = scan_root(con, r, volume=volume, workers=workers, rehash=rehash,
                                on_total=on_total, on_progress=on_progress)
            finally:
                if bar is not None:
                    bar.close()
            if not quiet:
                rate = res.bytes_read / 1e6 / res.seconds if res.seconds else 0.0
                typer.echo(
                    f"{res.root} (volume {res.volume}): {res.new} new, {res.changed} changed, "
                    f"{res.unchanged} unchanged, {res.missing} missing; read {res.files_read} files, "
                    f"{render.human_bytes(res.bytes_read)} in {res.seconds:.1f} s ({rate:.1f} MB/s)"
                )
        if not quiet:
            rows = idx.run(con, "ops/status_counts").fetchall()
            typer.echo("\nindex " + _index(index) + ":")
            typer.echo(render.table(["status", "files", "bytes"],
                                    [(s, n, render.human_bytes(b)) for s, n, b in rows]))
        con.execute("CHECKPOINT")
    finally:
        con.close()


@app.command()
def query(
    sql: Annotated[Optional[str], typer.Argument(help="SQL text, or the name of a shipped query.", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("-f", "--file", help="Read the SQL from this file.")] = None,
    index: IndexOpt = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="NAME=VALUE for $NAME in the SQL.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the shipped named queries.")] = False,
) -> None:
    """Run SQL read-only against the index (or a named query, e.g. corrupt_files)."""
    named = idx.named_queries()
    if list_:
        rows = [(n, idx.description(p.read_text(encoding="utf-8"))) for n, p in named.items()]
        typer.echo(render.table(["name", "description"], rows, max_width=100))
        return
    if file is not None:
        if sql is not None:
            fail("give either SQL or -f FILE, not both")
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as e:
            fail(f"cannot read {file}: {e.strerror}")
    elif sql is None:
        fail("give SQL, a query name (see 'pacscopy query --list') or -f FILE")
    elif sql in named:
        text = named[sql].read_text(encoding="utf-8")
    else:
        text = sql
    params: dict[str, Any] = {}
    for p in param or []:
        if "=" not in p:
            fail(f"--param {p!r} is not NAME=VALUE")
        k, v = p.split("=", 1)
        params[k] = v
    cols, rows = idx.query(_index(index), text, params or None)
    if cols:
        typer.echo(render.render(fmt.value, cols, rows))


@app.command()
def check(
    names: Annotated[Optional[list[str]], typer.Argument(help="Checks to run (default: all).", show_default=False)] = None,
    index: IndexOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary.")] = False,
) -> None:
    """Run the SQL checks into 'findings' and rebuild the plan (decisions are kept)."""
    from tqdm import tqdm

    from pacscopy.checks import run_checks

    con = idx.open_index(_index(index))
    bar: Any = None

    def on_total(n: int) -> None:
        nonlocal bar
        if n and not quiet:
            bar = tqdm(total=n, unit="file", desc="content hashes", file=sys.stderr, dynamic_ncols=True)

    def on_progress(n: int) -> None:
        if bar is not None:
            bar.update(n)

    try:
        res = run_checks(con, names, on_hash_total=on_total, on_hash_progress=on_progress)
    finally:
        if bar is not None:
            bar.close()
    try:
        if not quiet:
            rows = idx.run(con, "ops/findings_summary").fetchall()
            typer.echo(render.table(["check", "severity", "files", "instances"], rows))
            typer.echo("")
            rows = idx.run(con, "ops/disposition_summary").fetchall()
            typer.echo(render.table(["disposition", "instances", "decided", "bytes"],
                                    [(d, n, k, render.human_bytes(b)) for d, n, k, b in rows]))
    finally:
        con.close()


class Action(str, Enum):
    send = "send"
    skip = "skip"
    hold = "hold"


@app.command()
def decide(
    sop: Annotated[Optional[str], typer.Option("--sop", help="SOPInstanceUID to decide on.")] = None,
    action: Annotated[Optional[Action], typer.Option("--action", help="What to do with it.")] = None,
    note: Annotated[Optional[str], typer.Option("--note", help="Why (kept for the audit trail).")] = None,
    path: Annotated[Optional[str], typer.Option("--path", help="With send: which copy to send.")] = None,
    csv_file: Annotated[Optional[Path], typer.Option("--csv", help="CSV of decisions: sop_instance_uid,action,note[,path].")] = None,
    index: IndexOpt = None,
) -> None:
    """Override the plan for instances; decisions survive every re-run of check."""
    from pacscopy.checks import Decision, read_decisions_csv, record_decisions

    if csv_file is not None:
        if sop or action or note or path:
            fail("give either --csv FILE or --sop/--action/--note, not both")
        decisions = read_decisions_csv(csv_file)
    else:
        if not (sop and action and note):
            fail("give --sop UID --action send|skip|hold --note TEXT (or --csv FILE)")
        decisions = [Decision(sop, action.value, note, path)]
    con = idx.open_index(_index(index))
    try:
        n = record_decisions(con, decisions)
    finally:
        con.close()
    typer.echo(f"recorded {n} decision{'s' if n != 1 else ''}")


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pacscopy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    os.umask(0o077)  # everything pacscopy writes may hold patient data


def main(argv: list[str] | None = None) -> None:
    """Entry point: one error boundary for the whole CLI."""
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)  # typer.Exit inside a command comes back as a return value
    except PacscopyError as e:
        typer.echo(f"pacscopy: error: {e}", err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("pacscopy: aborted", err=True)
        sys.exit(130)
    except typer.TyperException as e:  # usage errors from the bundled click
        msg = e.format_message() if hasattr(e, "format_message") else str(e)
        typer.echo(f"pacscopy: error: {msg} (see 'pacscopy --help')", err=True)
        sys.exit(getattr(e, "exit_code", 2) or 2)
    except KeyboardInterrupt:
        typer.echo("pacscopy: interrupted; everything written so far is kept", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
