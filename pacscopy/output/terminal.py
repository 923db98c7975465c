"""What the CLI draws on the terminal besides its result: progress bars and notes on stderr,
and a rendered text sent to stdout or to a file.

Only :mod:`pacscopy.cli` uses this module; the library reports progress through callbacks.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import typer

from pacscopy.output import summaries


def bar(total: int | None, unit: str, desc: str, **kw: Any) -> Any:
    """A progress bar on stderr that also shows MB/s (see :func:`advance`)."""
    from tqdm import tqdm

    b = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True, **kw)
    b.mb = 0.0
    return b


def advance(b: Any, n: int, nbytes: int, every: int = 1) -> None:
    """Move ``b`` on by ``n`` items of ``nbytes`` bytes in all."""
    b.mb += nbytes / 1e6
    b.update(n)
    el = b.format_dict.get("elapsed") or 0
    if el and b.n % every == 0:
        b.set_postfix_str(f"{b.mb / el:.1f} MB/s", refresh=False)


class Progress:
    """A bar drawn once the library announces its total (none when ``quiet``); a context manager that closes it.

    ``on_total``/``on_progress``/``on_bytes`` are the callbacks handed to the library.
    """

    def __init__(self, quiet: bool, unit: str, desc: str, *, empty: bool = False, **kw: Any) -> None:
        self.quiet, self.unit, self.desc, self.empty, self.kw = quiet, unit, desc, empty, kw
        self.bar: Any = None

    def on_total(self, n: int, nbytes: int = 0) -> None:
        if not self.quiet and (n or self.empty):
            self.bar = bar(n, self.unit, self.desc, **self.kw)

    def on_progress(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def on_bytes(self, n: int, nbytes: int) -> None:
        if self.bar is not None:
            advance(self.bar, n, nbytes)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class ScanProgress(Progress):
    """The scan's bar: files found while the walk runs, then files read of the root's total; a line per root."""

    def __init__(self, quiet: bool) -> None:
        super().__init__(quiet, "file", "scan", smoothing=0.1)

    def on_walk(self, root: Any, found: int, files: int, nbytes: int) -> None:
        if self.quiet:
            return
        desc = f"scan {Path(root).name or root} (walking: {found:,} files found)"
        if self.bar is None:
            self.bar = bar(None, self.unit, desc, **self.kw)
        else:
            self.bar.set_description_str(desc)

    def on_root_total(self, root: Any, files: int, nbytes: int) -> None:
        if self.bar is not None:
            self.bar.total = files
            self.bar.set_description_str(f"scan {Path(root).name or root}")

    def on_done(self, res: Any) -> None:
        self.close()
        if not self.quiet:
            typer.echo(summaries.scan_root_line(res))


def note(message: str) -> None:
    """One line on stderr, prefixed with the program's name."""
    typer.echo(f"pacscopy: {message}", err=True)


def note_running(con: Any, index: str) -> None:
    """Say on stderr which sends are running, and how old the index's figures of them are."""
    from pacscopy.journal import running

    for r in running(con, index):
        when = f"{r.as_of:%Y-%m-%d %H:%M:%S}, its latest merge" if r.as_of else "its start"
        note(f"note: a send to {r.send.target} {r.send.state()}, pid {r.send.pid}): "
             f"its figures here are as of {when}")


def emit_chunks(chunks: Iterable[str], out: Path | None, note: str = "") -> None:
    """:func:`emit` for a text written in pieces as they come (never held whole)."""
    if out is None:
        for c in chunks:
            typer.echo(c, nl=False)
        typer.echo("")
        return
    from pacscopy.output.outfile import write_private

    write_private(out, chunks)
    typer.echo(f"wrote {out}{note}", err=True)


def emit(text: str, out: Path | None, note: str = "") -> None:
    """Print a rendered text, or write it to ``out`` (owner-only) and say so on stderr."""
    if out is None:
        typer.echo(text)
        return
    from pacscopy.output.outfile import write_private

    write_private(out, text)
    typer.echo(f"wrote {out}{note}", err=True)
