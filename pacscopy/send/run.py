"""A whole ``pacscopy send``: the shared books set up (if linked), the send or its dry run, the updates proven.

:func:`run` and :func:`dry_run` are what the CLI calls; :mod:`pacscopy.send.send`
is the send itself, :mod:`pacscopy.pg.sendbooks` its shared books.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pacscopy import index as idx
from pacscopy.dicom.peer import Target
from pacscopy.errors import InputError, PacscopyError
from pacscopy.send.books import Books
from pacscopy.send.options import SendOptions
from pacscopy.send.queue import DryRun
from pacscopy.send.send import SendSummary, send_index

_STOPPED = ("target_down", "target_refused")  # the target is gone: no retrieve-back of the updates


@dataclass
class SendRun:
    """What a send did: its summary, the shared books it went through, the proof of its updates."""

    summary: SendSummary
    books: Any = None  # the PgBooks it recorded through (None: no shared books)
    caught_up: int = 0  # instances an earlier run of this host stored and the books had not recorded
    republished: int | None = None  # the plan changed since 'books publish': published again (its instances)
    proof: Any = None  # the retrieve-back of the updates (VerifyResult), None when none was run
    proof_error: str | None = None  # why the retrieve-back failed ...
    unproven: int = 0  # ... and how many updates wait for it

    @property
    def stale(self) -> int:
        """Updates the target answered success to but did not take (kept its old copy, or lost)."""
        c = self.proof.counts if self.proof is not None else {}
        return int(c.get("mismatch", 0) + c.get("missing_on_target", 0))

    @property
    def ok(self) -> bool:
        """Everything queued is stored and every update proven (the exit code is 0)."""
        return not (self.summary.failed or self.summary.left or self.stale)


@dataclass
class _Shared:
    """What :func:`_shared` set up: the options (with ``--shard``'s filter), a function wrapping the send's
    local books in :class:`pacscopy.pg.sendbooks.PgBooks` (None: no shared books) with the list it puts the
    PgBooks in, how many instances were caught up, and how many were republished (None: the plan was current)."""

    opts: SendOptions
    wrap: Callable[[Books], Books] | None = None
    made: list[Any] = dataclasses.field(default_factory=list)
    caught_up: int = 0
    republished: int | None = None


def _shared(index: str, t: Target, opts: SendOptions, books: str | None, shard: str | None,
            dry_run: bool) -> _Shared:
    """A linked index (or ``--books``) sends through the shared books (README, "Several machines").

    Before the send, the share is registered (an overlapping one refused), the plan is published again if
    it changed since the last ``books publish`` (a check, decide, map or manifest load since: the other
    hosts' status and reconcile read the published plan), and what an earlier run left unrecorded is
    caught up. A dry run changes nothing.
    """
    from pacscopy.pg import books as bk

    sh = bk.Shard.parse(shard) if shard else None
    with idx.open_index(index) as con:  # read-write: a dead run's journal is merged first (catch-up needs it)
        link = bk.read_link(con)
        if link is None and not books:
            if sh is not None:
                raise InputError("--shard needs shared books: link the index with 'pacscopy books join URL' first")
            return _Shared(opts)
        if sh is not None:
            opts = dataclasses.replace(opts, where=f"({opts.where}) AND {sh.where()}" if opts.where else sh.where())
        if dry_run:
            return _Shared(opts)
        from pacscopy.pg.sendbooks import PgBooks, catch_up

        pg, link, url = bk.open_linked(con, books)
        republished = None
        with pg:
            bk.register_share(pg, url, link, str(t), sh)
            if bk.plan_changed(pg, url, link, con):
                republished = bk.publish(pg, url, link, con)
        n = catch_up(url, link, con, str(t))
    made: list[Any] = []

    def wrap(local: Books) -> Books:
        made.append(PgBooks(local, url, link, sh))
        return made[0]  # type: ignore[no-any-return]

    return _Shared(opts, wrap, made, n, republished)


def dry_run(index: str, target: Target, opts: SendOptions, *, books: str | None = None,
            shard: str | None = None) -> DryRun:
    """What a send with these options would send; nothing is sent or recorded."""
    from pacscopy.send.queue import dry_run as queue_dry_run
    from pacscopy.verify.living import require_sent

    opts = _shared(index, target, opts, books, shard, True).opts
    with idx.open_index(index) as con:
        if opts.updates_only:
            require_sent(con, target)
        return queue_dry_run(con, target, opts)


def run(
    index: str,
    target: Target,
    opts: SendOptions,
    *,
    books: str | None = None,
    shard: str | None = None,
    prove: bool = True,
    port: int = 0,
    on_total: Callable[[int, int], None] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    on_wait: Callable[[dt.datetime], None] | None = None,
    on_caught_up: Callable[[int], None] | None = None,
    on_republished: Callable[[int], None] | None = None,
) -> SendRun:
    """Send the plan to ``target`` (through the shared books when linked), then retrieve back the updates.

    A success status is no proof that a target took an update: unless ``prove`` is false, the
    updates just stored are retrieved back (C-GET, or C-MOVE to ``port``); when that fails the
    send still succeeds and ``verify`` proves them later.
    """
    from pacscopy.runfolder import refuse_if_running

    if os.path.isfile(index):  # one send per target: a second one is refused at once, not after a wait for the index
        refuse_if_running(index, str(target))
    sh = _shared(index, target, opts, books, shard, False)
    opts = sh.opts
    if sh.republished is not None and on_republished:
        on_republished(sh.republished)
    if sh.caught_up and on_caught_up:
        on_caught_up(sh.caught_up)
    res = send_index(index, target, opts, on_total=on_total, on_progress=on_progress, on_wait=on_wait,
                     wrap_books=sh.wrap)
    out = SendRun(res, sh.made[0] if sh.made else None, sh.caught_up, republished=sh.republished)
    if res.updates_queued and prove and res.outcome not in _STOPPED:
        _prove(out, index, target, opts, port)
    return out


def _prove(out: SendRun, index: str, target: Target, opts: SendOptions, port: int) -> None:
    from pacscopy.verify.living import prove_updates, unproven_updates

    try:
        out.proof = prove_updates(index, target, calling_ae=opts.calling_ae, timeout=opts.timeout, port=port)
    except PacscopyError as e:
        with idx.open_index(index, read_only=True) as con:
            out.unproven = len(unproven_updates(con, target))
        out.proof_error = str(e)
