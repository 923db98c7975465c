"""Worker processes of send and check: :mod:`multiprocessing` with the forkserver start method.

Why forkserver: the process that starts them holds DuckDB's threads and locks,
which a plain fork would copy in an unsafe state; the forkserver is a fresh
interpreter that forks each worker from itself. (The scan has its own
mechanism, :mod:`pacscopy.scan.pool`, which streams pickled rows over pipes.)
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
