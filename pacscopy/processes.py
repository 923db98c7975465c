"""Worker processes of send and check: multiprocessing's forkserver start method, one of pacscopy's two mechanisms.

Why (in one line): the caller holds DuckDB's threads and locks, which a fork would copy unsafely; a forkserver forks from a fresh interpreter.

Send starts long-lived ``Process`` es (one association each, fed through queues), check a
``Pool`` (content digests of chunks of files); both take their context from :func:`forkserver`.
The other mechanism is the scan's (:mod:`pacscopy.scan.pool`: plain subprocesses fed over
pipes, for the reason written there).
"""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.context import ForkServerContext


def forkserver(*preload: str) -> ForkServerContext:
    """The forkserver context; ``preload``: modules the server imports once, before forking any worker."""
    ctx = mp.get_context("forkserver")
    if preload:
        ctx.set_forkserver_preload(list(preload))
    return ctx
