"""A whole ``pacscopy verify``: the chosen mode over the sent instances, and the updates' own proof.

Updates are proven only by a retrieve-back: a retrieve run takes every unproven one whatever
the sample; after a find or commit run they are retrieved back on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pacscopy import index as idx
from pacscopy.dicom.peer import Target
from pacscopy.errors import PacscopyError
from pacscopy.verify.living import unproven_updates
from pacscopy.verify.verify import VerifyResult, verify


@dataclass
class VerifyRun:
    """The mode's result; for a find or commit run, the retrieve-back of the updates (or why it failed)."""

    result: VerifyResult
    proof: VerifyResult | None = None
    updates: int = 0  # updates that waited for their proof
    proof_error: str | None = None

    @property
    def ok(self) -> bool:
        """Every instance checked verified, and every update proven (the exit code is 0)."""
        return self.result.ok and self.proof_error is None and (self.proof is None or self.proof.ok)


def run(index: str, target: Target, mode: str, *, sample: float | None = None, calling_ae: str = "PACSCOPY",
        timeout: float = 30, port: int = 0, move: bool = False, bind: str | None = None,
        on_total: Callable[[int], None] | None = None,
        on_progress: Callable[[int], None] | None = None) -> VerifyRun:
    """Verify what was sent to ``target`` in ``mode`` (find, commit, retrieve); then prove the updates."""
    with idx.open_index(index) as con:  # held only briefly: a send, a scan, a status run meanwhile
        updates = unproven_updates(con, target)
    res = verify(index, target, mode, sample=sample, calling_ae=calling_ae, timeout=timeout, port=port, move=move,
                 bind=bind, include=updates if mode == "retrieve" else None, on_total=on_total,
                 on_progress=on_progress)
    out = VerifyRun(res, updates=len(updates))
    if updates and mode != "retrieve":
        try:
            out.proof = verify(index, target, "retrieve", calling_ae=calling_ae, timeout=timeout, port=port,
                               move=move, bind=bind, only=updates)
        except PacscopyError as e:
            out.proof_error = str(e)
    return out
