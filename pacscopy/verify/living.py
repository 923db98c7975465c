"""Living data: the books follow a source that changes (issue 14).

The SQL lives in ``sql/schema/0010_living.sql`` (macro ``books``: per planned
instance, how the target's copy stands against the source now; and the final
states built on it; view ``outgoing`` in ``0015_living_outgoing.sql``: what
pacscopy sends now, after the manifest's corrections and the PatientID map) and
``sql/ops/living/``. Here: the checks a delta run needs before it starts, and
the proof of updates (a success status is no proof that a target replaced its
copy: only a retrieve-back is; ``send`` runs it right after it stored updates,
``verify`` for any still unproven).
"""

from __future__ import annotations

from typing import Any

import duckdb

from pacscopy.dicom.peer import Target
from pacscopy.errors import InputError
from pacscopy.index import run


def require_sent(con: duckdb.DuckDBPyConnection, target: Target) -> None:
    """A delta run needs a first run: refuse a target nothing was ever stored on."""
    row = run(con, "ops/living/ever_stored", {"target": str(target)}).fetchone()
    if not row or not row[0]:
        raise InputError(f"nothing was ever stored on {target}: a delta run (--updates-only) needs a first "
                         f"run; send everything first with 'pacscopy send --target {target}'")


def unproven_updates(con: duckdb.DuckDBPyConnection, target: Target) -> set[str]:
    """Instances whose latest store on ``target`` was an update not yet retrieved back."""
    return {r[0] for r in run(con, "ops/living/unproven_updates", {"target": str(target)}).fetchall()}


def check_deleted_decisions(con: duckdb.DuckDBPyConnection, decisions: list[tuple[str, str]]) -> None:
    """``keep``/``remove`` are answers for an instance deleted in the source and still on a target."""
    sops = [sop for sop, action in decisions if action in ("keep", "remove")]
    if not sops:
        return
    row = run(con, "ops/living/decide_not_deleted", {"sops": sops}).fetchone()
    if row is not None:
        sop, why = row
        raise InputError(f"SOPInstanceUID {sop} {why}: keep and remove are for instances deleted in the source "
                         f"and still stored on a target (use send, skip or hold otherwise)")


def prove_updates(index: str, target: Target, *, calling_ae: str = "PACSCOPY", timeout: float = 30,
                  port: int = 0, move: bool = False, bind: str | None = None) -> Any:
    """Retrieve back every update stored on ``target`` and not proven yet; record and return the result.

    A target may answer success to a second C-STORE of a SOPInstanceUID and keep its first copy
    (Orthanc without ``OverwriteInstances``): only a retrieve-back (C-GET, or C-MOVE to pacscopy's
    own port) proves an update landed. ``None`` when no update waits for its proof. The index is
    held only to list them and to record the outcomes (as verify).
    """
    from pacscopy.index import open_index
    from pacscopy.verify.verify import verify

    with open_index(index) as con:
        updates = unproven_updates(con, target)
    if not updates:
        return None
    return verify(index, target, "retrieve", calling_ae=calling_ae, timeout=timeout, port=port, move=move,
                  bind=bind, only=updates)
