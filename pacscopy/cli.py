"""The command line: each command parses, makes one library call, renders, chooses the exit code.

Only this module (with its terminal helpers, :mod:`pacscopy.output.terminal`) prints,
draws progress bars or exits; the wording of results lives in :mod:`pacscopy.output`.
Library errors (:class:`PacscopyError`) become one line on stderr and exit code 2.

A command imports what it needs when it runs (DuckDB, pydicom, pynetdicom): a ``status`` polled
every second during a send is a whole process each time, and on 2 cores its start-up is taken
from the send. For the same reason this module has no ``from __future__ import annotations``:
typer would evaluate every command's annotations from strings at each start (~0.015 CPU-s).
"""

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

from pacscopy import __version__
from pacscopy import runfolder, validate
from pacscopy.errors import PacscopyError
from pacscopy.output import render, summaries, terminal

IndexOpt = Annotated[Optional[str], typer.Option(
    "--index", help="Index file (default: $PACSCOPY_INDEX, else ./pacscopy.duckdb).", show_default=False)]
TargetOpt = Annotated[str, typer.Option(
    "--target", help="Target as AE@host:port, e.g. ORTHANC@127.0.0.1:4242.", show_default=False)]


BooksOpt = Annotated[Optional[str], typer.Option(
    "--books", help="Shared books (PostgreSQL URL): the whole migration, every host.", show_default=False)]
CallingOpt = Annotated[str, typer.Option("--calling-ae", help="Our AE title.",
                                         callback=validate.option(validate.ae_title, "--calling-ae"))]

app = typer.Typer(
    name="pacscopy",
    help="Bulk copy and reconciliation for PACS migrations: scan, check, send, verify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"pacscopy: error: {message}", err=True)
    raise typer.Exit(code)


def _index(path: Optional[str]) -> str:
    return path or runfolder.default_index_path()


@app.command()
def scan(
    roots: Annotated[list[Path], typer.Argument(help="Folders (restored volumes) or files to scan.", show_default=False)],
    index: IndexOpt = None,
    volume: Annotated[Optional[str], typer.Option(help="Volume label (default: each root folder's name).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (default: number of cores).")] = os.cpu_count() or 1,
    io_depth: Annotated[Optional[int], typer.Option(
        min=1, help="Reads in flight at most (default 64; adapts to the storage's latency).")] = None,
    rehash: Annotated[bool, typer.Option("--rehash", help="Re-read every file, not only changed ones.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary.")] = False,
) -> None:
    """Index every file under ROOTs: hash, header, status. Incremental on rescans."""
    from pacscopy.scan.scan import scan as do_scan

    with terminal.ScanProgress(quiet) as p:
        result = do_scan(roots, _index(index), volume=volume, workers=workers, io_depth=io_depth, rehash=rehash,
                         on_total=p.on_root_total, on_walk=p.on_walk, on_progress=p.on_bytes, on_done=p.on_done)
    if not quiet:
        typer.echo(summaries.index_statuses(result.index, result.statuses))


@app.command()
def query(
    sql: Annotated[Optional[str], typer.Argument(help="SQL text, or the name of a shipped query.", show_default=False)] = None,
    file: Annotated[Optional[Path], typer.Option("-f", "--file", help="Read the SQL from this file.")] = None,
    index: IndexOpt = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="NAME=VALUE for $NAME in the SQL.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the shipped named queries.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write the result to this file (0600) instead of stdout.")] = None,
) -> None:
    """Run SQL read-only against the index (or a named query, e.g. corrupt_files); no file access."""
    from pacscopy import queries
    from pacscopy.index import query as query_index

    if list_:
        typer.echo(render.table(["name", "description"], queries.listing(), max_width=100))
        return
    text = queries.sql_text(sql, file)
    params: dict[str, Any] = {}
    for p in param or []:
        if "=" not in p:
            fail(f"--param {p!r} is not NAME=VALUE")
        k, v = p.split("=", 1)
        params[k] = v
    cols, rows = query_index(_index(index), text, params or None)
    if cols:
        terminal.emit(render.render(fmt.value, cols, rows), out)


@app.command()
def check(
    names: Annotated[Optional[list[str]], typer.Argument(help="Checks to run (default: all).", show_default=False)] = None,
    index: IndexOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary.")] = False,
    manifest_policy: Annotated[Optional[list[str]], typer.Option(
        "--manifest-policy", help="RULE=ACTION for the manifest's cases (deleted, orphan, demographics, "
        "uid_mismatch); kept until set again.", show_default=False)] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-evaluate every file, not only the groups of the "
                                       "files changed since the last check.")] = False,
) -> None:
    """Run the SQL checks into 'findings' and rebuild the plan (decisions are kept)."""
    from pacscopy.check.checks import run_checks
    from pacscopy.index import open_index
    from pacscopy.manifest import parse_policy, set_policy

    policy = parse_policy(manifest_policy or [])
    with open_index(_index(index)) as con, terminal.Progress(quiet, "file", "content hashes") as p:
        set_policy(con, policy)
        res = run_checks(con, names, full=full, on_hash_total=p.on_total, on_hash_progress=p.on_progress)
    if not quiet:
        typer.echo(res.describe())
        typer.echo(render.table(["check", "severity", "files", "instances"], res.summary))
        typer.echo("")
        typer.echo(summaries.plan_table(res.plan))


class Action(str, Enum):
    send = "send"
    skip = "skip"
    hold = "hold"
    keep = "keep"  # deleted in the source, still on the target: keep it there
    remove = "remove"  # ... remove it there (by the target's administrator: pacscopy never deletes)


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
    from pacscopy.check.decisions import Decision, read_decisions_csv, record_decisions
    from pacscopy.index import open_index

    if csv_file is not None:
        if sop or action or note or path:
            fail("give either --csv FILE or --sop/--action/--note, not both")
        decisions = read_decisions_csv(csv_file)
    else:
        if not (sop and action and note):
            fail("give --sop UID --action send|skip|hold|keep|remove --note TEXT (or --csv FILE)")
        decisions = [Decision(sop, action.value, note, path)]
    with open_index(_index(index)) as con:
        n = record_decisions(con, decisions, str(csv_file) if csv_file is not None else None)
    typer.echo(f"recorded {n} decision{'s' if n != 1 else ''}")


class ReportFormat(str, Enum):
    table = "table"
    json = "json"
    html = "html"


@app.command()
def report(
    index: IndexOpt = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = ReportFormat.table,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")] = None,
    show_phi: Annotated[bool, typer.Option("--show-phi", help="Show patient names (hidden by default in details, paths, notes, labels).")] = False,
    books: BooksOpt = None,
) -> None:
    """Counts per status, volume, modality and year; findings per check; dispositions."""
    from pacscopy.index import open_index
    from pacscopy.output import report as rep

    if books:
        from pacscopy.output.books import report_text
        from pacscopy.pg.books import report as books_report

        return terminal.emit(report_text(books_report(books), fmt.value), out)
    with open_index(_index(index), read_only=True) as con:
        data = rep.build(con, show_phi=show_phi)
        terminal.note_running(con, _index(index))
    terminal.emit({"table": rep.to_text, "json": rep.to_json, "html": rep.to_html}[fmt.value](data), out)


@app.command()
def probe(
    target: TargetOpt,
    index: IndexOpt = None,
    calling_ae: CallingOpt = "PACSCOPY",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the target.",
                                           callback=validate.option(validate.timeout, "--timeout"))] = 10.0,
) -> None:
    """C-ECHO the target and record which (SOP class, transfer syntax) pairs it accepts."""
    from pacscopy.send.probe import probe_index

    t = validate.target(target)
    res = probe_index(_index(index), t, calling_ae, timeout)  # the index is closed while the target is asked
    typer.echo("\n".join(summaries.probe_lines(res)))


@app.command()
def send(
    target: TargetOpt,
    index: IndexOpt = None,
    associations: Annotated[int, typer.Option(min=1, max=32, help="Parallel associations.")] = 2,
    max_rate: Annotated[Optional[str], typer.Option(help="Cap on bytes/s over all associations, e.g. 40MB/s.")] = None,
    window: Annotated[Optional[str], typer.Option(help="Send only inside this daily window, e.g. 19:00-06:30.")] = None,
    where: Annotated[Optional[str], typer.Option(help="SQL predicate on the queue (columns of ops/send/send_queue.sql).")] = None,
    limit: Annotated[Optional[int], typer.Option(min=0, help="Send at most N instances.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be sent; send nothing.")] = False,
    transcode: Annotated[bool, typer.Option("--transcode", help="Also send blocked instances decompressed.")] = False,
    no_updates: Annotated[bool, typer.Option("--no-updates", help="Leave out updates of instances the target already has.")] = False,
    updates_only: Annotated[bool, typer.Option("--updates-only", help="Send only updates (a delta run of a target already sent to).")] = False,
    no_prove: Annotated[bool, typer.Option("--no-prove", help="Do not retrieve updates back right after the send (verify does it).")] = False,
    port: Annotated[int, typer.Option(help="Updates' retrieve-back: port of our C-MOVE SCP for a target without C-GET.",
                                      callback=validate.option(validate.port, "--port", allow_zero=True))] = 0,
    calling_ae: CallingOpt = "PACSCOPY",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each answer (DIMSE/ACSE).",
                                           callback=validate.option(validate.timeout, "--timeout"))] = 20.0,
    retries: Annotated[int, typer.Option(min=0, help="Retries per instance for retryable failures.")] = 4,
    wait_for_target: Annotated[float, typer.Option(min=0, help="Seconds to wait for a target that went down.")] = 120.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    books: BooksOpt = None,
    shard: Annotated[Optional[str], typer.Option("--shard", help="With shared books: send only share K of N "
                                                 "of the studies, e.g. 1/3.", show_default=False)] = None,
) -> None:
    """Send what the plan says 'send' with C-STORE: parallel, throttled, resumable."""
    from pacscopy.send import run as send_run
    from pacscopy.send.options import SendOptions, Window, parse_rate

    t = validate.target(target, resolve=not dry_run)
    opts = SendOptions(associations=associations, calling_ae=calling_ae, max_rate=parse_rate(max_rate),
                       window=Window.parse(window) if window else None, where=where, limit=limit,
                       timeout=timeout, retries=retries, wait_for_target=wait_for_target, transcode=transcode,
                       updates=not no_updates, updates_only=updates_only)
    if no_updates and updates_only:
        fail("give --no-updates or --updates-only, not both")
    if dry_run:
        plan = send_run.dry_run(_index(index), t, opts, books=books, shard=shard)
        typer.echo("\n".join(summaries.dry_run_lines(plan, t)))
        return
    p = terminal.Progress(quiet, "inst", f"send {t.ae}", delay=1.0)

    def on_progress(msg: dict[str, Any]) -> None:
        if msg["outcome"] in ("stored", "warning", "failed"):
            p.on_bytes(1, msg["bytes"] or 0)

    with p:
        res = send_run.run(
            _index(index), t, opts, books=books, shard=shard, prove=not no_prove, port=port,
            on_total=p.on_total, on_progress=on_progress, on_caught_up=lambda n: typer.echo(
                f"books: recorded {n} instances stored by an earlier run of this host", err=True),
            on_republished=lambda n: typer.echo(
                f"books: this host's plan changed since 'books publish': published it again ({n} instances)",
                err=True),
            on_wait=lambda opens: typer.echo(f"outside the window {opts.window}: waiting until "
                                             f"{opens:%Y-%m-%d %H:%M}", err=True))
    typer.echo("\n".join(summaries.send_lines(res)))
    if res.proof_error is not None:
        typer.echo(summaries.unproven_line(res.unproven, res.proof_error), err=True)
    if not res.ok:
        raise typer.Exit(1)


@app.command()
def status(
    target: TargetOpt,
    index: IndexOpt = None,
    books: BooksOpt = None,
    watch: Annotated[Optional[float], typer.Option(
        "--watch", min=0.1, help="Show the figures again every SECONDS until Ctrl-C, from one process "
        "(much cheaper than 'watch pacscopy status').", show_default=False)] = None,
) -> None:
    """Progress towards a target, with an estimated finish at the latest run's rate."""
    t = validate.target(target, resolve=False)
    if books:
        from pacscopy.output.books import status_text
        from pacscopy.pg.books import status as books_status

        return typer.echo(status_text(books_status(books, str(t))))
    from pacscopy.send import status_cache

    def show(lean: bool) -> None:
        # while a send to the target runs, the figures it published after its latest merge, if the index
        # is still as it was then: the same figures, without DuckDB or opening the index
        published = status_cache.live(_index(index), str(t))
        if published is not None:
            return typer.echo("\n".join(summaries.status_lines(t, *published)))
        from pacscopy.index import open_index
        from pacscopy.journal import running
        from pacscopy.send.queue import keep_count, open_to_count, progress

        with open_index(_index(index), read_only=True, lean=lean) as con:
            p = progress(con, t, _index(index), count=False)
            sends = running(con, _index(index)) if p is not None else []
        if p is None:  # a full count: read-write if it can be had at once, so that it is kept as it is made
            # (minutes at tens of millions of instances, once: its slices drawn on stderr after a second)
            with open_to_count(_index(index), lean) or open_index(_index(index), read_only=True, lean=True) as con, \
                    terminal.Progress(False, "slice", "status: counting every instance once", delay=1.0) as bar:
                p = progress(con, t, _index(index), on_total=bar.on_total, on_progress=bar.on_progress)
                sends = running(con, _index(index))
        assert p is not None
        typer.echo("\n".join(summaries.status_lines(t, p, sends)))
        if p.counted is None:
            return
        # a count made read-only (a writer held the index): kept in the index now if it can be had, and
        # kept current by the writers from then on; the figures are shown first, as keeping evaluates again
        with terminal.Progress(False, "slice", "status: keeping the count for the next status", delay=1.0) as bar:
            unkept = keep_count(p, on_total=bar.on_total, on_progress=bar.on_progress)
        if unkept:
            typer.echo(f"pacscopy: note: {unkept}", err=True)

    show(False)
    if watch is None:
        return
    import signal
    import time

    # Ctrl-C ends the watch once the read under way is done: never lost inside a DuckDB call (a
    # KeyboardInterrupt there can surface as a DuckDB error that a reader handles and goes on)
    stop: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: stop.append(signum))
    try:
        while not stop:  # the index was checked at the first open: later ones skip that (lean)
            end = time.monotonic() + watch
            while not stop and time.monotonic() < end:
                time.sleep(min(0.1, max(0.0, end - time.monotonic())))
            if stop:
                break
            typer.echo(f"\n-- {time.strftime('%Y-%m-%d %H:%M:%S')} (every {watch:g} s; Ctrl-C ends)")
            show(True)
    finally:
        signal.signal(signal.SIGINT, previous)


@app.command(name="map")
def map_(
    csv_file: Annotated[Path, typer.Option("--csv", help="CSV: old_id,new_id[,issuer]", show_default=False)],
    index: IndexOpt = None,
    merge: Annotated[bool, typer.Option("--merge", help="Allow mappings onto another patient's ID (merges; recorded).")] = False,
) -> None:
    """Load a PatientID mapping; mapped instances are rewritten at send time."""
    from pacscopy.index import open_index
    from pacscopy.send.patient_map import load_patient_map

    with open_index(_index(index)) as con:
        n = load_patient_map(con, str(csv_file), merge=merge)
    typer.echo(f"loaded {n} PatientID mapping{'s' if n != 1 else ''}")


class ManifestAction(str, Enum):
    load = "load"


class ManifestFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"
    json = "json"


@app.command()
def manifest(
    action: Annotated[ManifestAction, typer.Argument(help="load: replace the manifest with an export.")],
    file: Annotated[Path, typer.Argument(help="The old PACS's database export.", show_default=False)],
    fmt: Annotated[Optional[ManifestFormat], typer.Option(
        "--format", help="csv, parquet or json (default: from the extension).", show_default=False)] = None,
    columns: Annotated[Optional[str], typer.Option(
        "--columns", help="Column mapping: a file of ours=theirs lines, or ours=theirs,... pairs.",
        show_default=False)] = None,
    index: IndexOpt = None,
) -> None:
    """Load the old PACS's database export (the manifest); run check to apply it."""
    from pacscopy.index import open_index
    from pacscopy.manifest import load_manifest, parse_mapping

    mapping = parse_mapping(columns)
    with open_index(_index(index)) as con:
        res = load_manifest(con, file, fmt.value if fmt else None, mapping)
    typer.echo(summaries.manifest_line(res))


@app.command()
def receive(
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).",
                                      callback=validate.option(validate.port, "--port", allow_zero=True))],
    storage: Annotated[Path, typer.Option(help="Folder to write received objects to.")],
    ae: Annotated[str, typer.Option("--ae", help="Our AE title.", callback=validate.option(validate.ae_title, "--ae"))] = "PACSCOPY_RX",
    host: Annotated[str, typer.Option(help="Address to listen on.",
                                      callback=validate.option(validate.resolvable, "--host"))] = "127.0.0.1",
    commit_reply: Annotated[Optional[str], typer.Option(
        help="Send Storage Commitment reports on a new association to AE@host:port.")] = None,
) -> None:
    """Run a small archive: stores into a folder, answers C-FIND, C-GET and Storage Commitment."""
    from pacscopy.receive import start_receiver

    if commit_reply is not None:
        validate.target(commit_reply)  # a bad value fails here, with one line
    rx = start_receiver(storage, port=port, ae_title=ae, host=host, commit_reply=commit_reply)
    typer.echo(f"receiving as {ae}@{host}:{rx.port} into {storage} (Ctrl-C to stop)", err=True)
    try:
        rx.wait()
    except KeyboardInterrupt:
        pass
    finally:
        rx.stop()
        typer.echo(f"received {rx.received} objects", err=True)


class VerifyMode(Enum):  # not a str subclass: its member "find" would shadow str.find
    find = "find"
    commit = "commit"
    retrieve = "retrieve"


@app.command()
def verify(
    target: TargetOpt,
    index: IndexOpt = None,
    mode: Annotated[VerifyMode, typer.Option("--mode", help="find: C-FIND; commit: Storage Commitment; retrieve: C-GET and compare.")] = VerifyMode.find,
    sample: Annotated[Optional[float], typer.Option(min=0.01, max=100, help="Verify only this percentage (a reproducible sample).")] = None,
    calling_ae: CallingOpt = "PACSCOPY",
    port: Annotated[int, typer.Option(help="commit: port for the target's report; retrieve: port of our C-MOVE SCP.",
                                      callback=validate.option(validate.port, "--port", allow_zero=True))] = 0,
    move: Annotated[bool, typer.Option("--move", help="retrieve: use C-MOVE to our SCP on --port instead of C-GET.")] = False,
    bind: Annotated[Optional[str], typer.Option("--bind", help="Address our listener (--port) binds; default: the local address that reaches the target.",
                                                callback=validate.option(validate.resolvable, "--bind"))] = None,
    forget: Annotated[Optional[VerifyMode], typer.Option("--forget", help="Retire the recorded results of this mode for the target (recorded, not deleted), then stop.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the target.",
                                           callback=validate.option(validate.timeout, "--timeout"))] = 30.0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Prove the target holds what was sent: C-FIND, Storage Commitment, or retrieve and compare."""
    from pacscopy.index import open_index
    from pacscopy.verify.verify import forget as do_forget

    t = validate.target(target)
    if forget is not None:
        with open_index(_index(index)) as con:
            n = do_forget(con, t, forget.value)
        typer.echo(f"retired {n} {forget.value} results for {t} (recorded in verification_forgets)")
        return
    from pacscopy.verify.run import run as do_verify

    with terminal.Progress(quiet, "inst", f"verify {mode.value}", empty=True, delay=1.0) as p:
        run = do_verify(_index(index), t, mode.value, sample=sample, calling_ae=calling_ae, timeout=timeout,
                        port=port, move=move, bind=bind, on_total=p.on_total, on_progress=p.on_progress)
    typer.echo("\n".join(summaries.verify_lines(run)))
    if run.proof_error is not None:
        typer.echo(f"{run.updates} updates not proven (they need a retrieve-back): {run.proof_error}", err=True)
    if not run.ok:
        raise typer.Exit(1)


@app.command()
def reconcile(
    target: TargetOpt,
    index: IndexOpt = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Output format.")] = ReportFormat.table,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of stdout.")] = None,
    no_query: Annotated[bool, typer.Option("--no-query", help="Do not ask the target for study counts.")] = False,
    calling_ae: CallingOpt = "PACSCOPY",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the target.",
                                           callback=validate.option(validate.timeout, "--timeout"))] = 30.0,
    books: BooksOpt = None,
) -> None:
    """Account for every instance: verified on the target, or excluded with its reason. Exit 0 only when complete."""
    from pacscopy.verify import reconcile as rc

    if books:
        from pacscopy.output.books import reconcile_text
        from pacscopy.pg.books import reconcile as books_reconcile

        rec_all = books_reconcile(books, str(validate.target(target, resolve=False)))
        terminal.emit(reconcile_text(rec_all, fmt.value), out, ": complete" if rec_all.status.complete else ": NOT complete")
        if not rec_all.status.complete:
            raise typer.Exit(1)
        return
    t = validate.target(target, resolve=not no_query)
    with rc.open_for(_index(index), t) as con, \
            terminal.Progress(False, "slice", "reconcile: evaluating every instance once", delay=1.0) as bar:
        terminal.note_running(con, _index(index))  # read-write only to keep a full evaluation
        rec = rc.reconcile(con, t, query_target=False, on_total=bar.on_total, on_progress=bar.on_progress)
    if not no_query:  # the index is closed meanwhile: a send merges on
        rc.query_studies(rec, t, calling_ae=calling_ae, timeout=timeout)
    note = ": complete" if rec.complete else ": NOT complete"
    if fmt.value == "json":  # every study: written as read from the spool, never held whole
        terminal.emit_chunks(rc.json_chunks(rec), out, note)
    else:
        terminal.emit({"table": rc.to_text, "html": rc.to_html}[fmt.value](rec), out, note)
    if not rec.complete:
        raise typer.Exit(1)


# -- several machines: the shared books in PostgreSQL (README, "Several machines") ----------

books_app = typer.Typer(help="Several machines sharing one migration through PostgreSQL: init, join, publish.",
                        no_args_is_help=True)
app.add_typer(books_app, name="books")
BooksUrlArg = Annotated[str, typer.Argument(help="PostgreSQL URL, e.g. postgresql://pacscopy:PW@db:5432/pacscopy "
                                                 "(scripts/postgres start DIR prints one).", show_default=False)]


@books_app.command("init")
def books_init(
    url: BooksUrlArg,
    name: Annotated[str, typer.Option("--name", help="The migration's name.", show_default=False)],
) -> None:
    """Create the shared books of a new migration in an empty PostgreSQL database (once, from any host)."""
    from pacscopy.pg import books as bk

    m = bk.init(url, name)
    typer.echo(f"books {bk.redact(url)}: migration {m.name!r} ({m.migration_id}); each host: pacscopy books join URL")


@books_app.command("join")
def books_join(
    url: BooksUrlArg,
    index: IndexOpt = None,
    host: Annotated[Optional[str], typer.Option("--host", help="This host's name in the books (default: the "
                                                "machine's name).", show_default=False)] = None,
) -> None:
    """Link this host's index to the shared books (refused for another migration's) and publish its plan."""
    from pacscopy.pg import books as bk

    path = _index(index)
    link, n = bk.join_index(url, path, host)
    typer.echo(f"index {path} joined migration {link.migration_name!r} as host {link.host_name!r}; "
               f"published its plan ({n} instances); the password is not recorded")


@books_app.command("publish")
def books_publish(
    index: IndexOpt = None,
    books: BooksOpt = None,
) -> None:
    """Publish this host's plan to the shared books again (after each check)."""
    from pacscopy.pg import books as bk

    link, n = bk.publish_index(_index(index), books)
    typer.echo(f"host {link.host_name!r}: published its plan ({n} instances) to migration {link.migration_name!r}")


@books_app.command("release")
def books_release(
    url: BooksUrlArg,
    host: Annotated[str, typer.Option("--host", help="The host gone for good.", show_default=False)],
    target: Annotated[Optional[str], typer.Option("--target", help="Only its claims for this target (default: "
                                                  "every target).", show_default=False)] = None,
) -> None:
    """Release the claims of a host gone for good (not stored yet), so the other hosts send those instances."""
    from pacscopy.pg import books as bk

    t = str(validate.target(target, resolve=False)) if target else None
    n = bk.release(url, host, t)
    typer.echo(f"released {n} claims of host {host!r}" + (f" for {t}" if t else "") + ": other hosts may send them")


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
    runfolder.on_lock_wait = lambda msg: typer.echo(f"pacscopy: {msg}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one error boundary for the whole CLI."""
    import warnings

    # pydicom warns about every odd value it reads; the checks report those, once, in the index.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\..*)?")
    try:
        rc = app(args=argv, standalone_mode=False)
        if rc == 130:  # typer turns a Ctrl-C inside a command into Exit(130), silently
            typer.echo("pacscopy: interrupted; everything written so far is kept", err=True)
        if isinstance(rc, int) and rc:
            sys.exit(rc)  # typer.Exit inside a command comes back as a return value
    except PacscopyError as e:
        typer.echo(f"pacscopy: error: {e}", err=True)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        typer.echo("pacscopy: interrupted; everything written so far is kept", err=True)
        sys.exit(130)
    except typer.TyperException as e:  # usage errors from the bundled click
        msg = e.format_message() if hasattr(e, "format_message") else str(e)
        typer.echo(f"pacscopy: error: {msg} (see 'pacscopy --help')", err=True)
        sys.exit(getattr(e, "exit_code", 2) or 2)
    except KeyboardInterrupt:
        typer.echo("pacscopy: interrupted; everything written so far is kept", err=True)
        sys.exit(130)
    except Exception as e:
        if type(e) is RuntimeError and str(e) == "Query interrupted":  # see below
            typer.echo("pacscopy: interrupted; everything written so far is kept", err=True)
            sys.exit(130)
        if "duckdb" not in sys.modules:  # the command never touched an index (DuckDB is imported on demand)
            raise
        import duckdb

        from pacscopy.index import failure_message

        # Ctrl-C while DuckDB runs a statement: it ends the statement and its transaction and
        # raises InterruptException, or a RuntimeError("Query interrupted") from its bindings.
        if isinstance(e, duckdb.InterruptException):
            typer.echo("pacscopy: interrupted; everything written so far is kept", err=True)
            sys.exit(130)
        if not isinstance(e, duckdb.Error):
            raise
        # an index problem the library did not foresee: still one line
        if os.environ.get("PACSCOPY_DEBUG"):
            raise
        typer.echo(f"pacscopy: error: {failure_message(e)}", err=True)
        sys.exit(2)  # the one error code (README, "Exit codes")


if __name__ == "__main__":
    main()
