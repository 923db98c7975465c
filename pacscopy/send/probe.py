"""Probe a target: what (SOP class, transfer syntax) pairs does it accept?

Every pair present in the plan is proposed as its own presentation context
(one transfer syntax each, so acceptance is known per pair), plus the two
uncompressed syntaxes for every class, to know whether a refused compressed
object could be sent decompressed. At most 128 contexts per association.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from pacscopy.check.checks import DispositionCount, run_checks
from pacscopy.dicom.peer import Target
from pacscopy.dicom.scu import echo, request
from pacscopy.errors import ProbeError
from pacscopy.index import insert_columns, run, transaction

UNCOMPRESSED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")
MAX_CONTEXTS = 128


@dataclass
class ProbeResult:
    target: str
    echo_status: int
    pairs: int
    accepted: int
    associations: int
    plan: list[DispositionCount] = field(default_factory=list)  # re-planned: refused pairs are 'blocked'
    #: blocked instances by what ``send --transcode`` can do: None -> it can send them; 'refused' -> nothing
    #: (no syntax of the class accepted); else what is missing (a decoder and the package that adds it)
    blocked: dict[str | None, int] = field(default_factory=dict)


def probe(con: duckdb.DuckDBPyConnection, target: Target, calling_ae: str = "PACSCOPY",
          timeout: float = 10) -> ProbeResult:
    """Probe ``target`` holding the index ``con`` throughout (the CLI uses :func:`probe_index`)."""
    status, pairs = _ask_echo(target, calling_ae, timeout), _pairs(con)
    accepted, n_assoc = _ask_pairs(target, calling_ae, timeout, pairs)
    return _record(con, target, status, pairs, accepted, n_assoc)


def probe_index(index_path: str, target: Target, calling_ae: str = "PACSCOPY", timeout: float = 10) -> ProbeResult:
    """Probe ``target``, holding the index at ``index_path`` only to read the pairs and to record.

    The network work (C-ECHO, one association per 128 pairs, each up to ``timeout``) runs with the
    index closed, so a send's merges, a status or a query go on meanwhile.
    """
    from pacscopy.index import open_index

    with open_index(index_path, read_only=True) as con:
        pairs = _pairs(con)
    status = _ask_echo(target, calling_ae, timeout)
    accepted, n_assoc = _ask_pairs(target, calling_ae, timeout, pairs)
    with open_index(index_path) as con:
        return _record(con, target, status, pairs, accepted, n_assoc)


def _ask_echo(target: Target, calling_ae: str, timeout: float) -> int:
    status = echo(target, calling_ae, timeout, error=ProbeError)
    if status is None:
        raise ProbeError(f"{target} answered C-ECHO without a status")
    return status


def _pairs(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """The (SOP class, transfer syntax) pairs to propose: the plan's, and each class uncompressed."""
    return sorted({(c, t) for c, t in run(con, "ops/send/probe_pairs").fetchall()}
                  | {(c, t) for (c,) in run(con, "ops/send/probe_classes").fetchall() for t in UNCOMPRESSED})


def _ask_pairs(target: Target, calling_ae: str, timeout: float,
               pairs: list[tuple[str, str]]) -> tuple[dict[tuple[str, str], tuple[bool, str]], int]:
    accepted: dict[tuple[str, str], tuple[bool, str]] = {}
    n_assoc = 0
    for i in range(0, len(pairs), MAX_CONTEXTS):
        chunk = pairs[i : i + MAX_CONTEXTS]
        assoc = request(target, calling_ae, timeout, [(sop_class, [ts]) for sop_class, ts in chunk])
        n_assoc += 1
        if not assoc.is_established:
            why = "association rejected" if assoc.is_rejected else "no association"
            for p in chunk:
                accepted[p] = (False, why)
            continue
        ok = {(c.abstract_syntax, c.transfer_syntax[0]) for c in assoc.accepted_contexts}
        for p in chunk:
            accepted[p] = (p in ok, "accepted" if p in ok else "presentation context rejected")
        assoc.release()
    return accepted, n_assoc


def _record(con: duckdb.DuckDBPyConnection, target: Target, status: int, pairs: list[tuple[str, str]],
            accepted: dict[tuple[str, str], tuple[bool, str]], n_assoc: int) -> ProbeResult:
    with transaction(con):
        run(con, "ops/send/delete_capabilities", {"target": str(target)})
        if pairs:
            insert_columns(con, "ops/send/insert_capabilities", {
                "sop_class_uid": [p[0] for p in pairs], "transfer_syntax_uid": [p[1] for p in pairs],
                "accepted": [accepted[p][0] for p in pairs], "result": [accepted[p][1] for p in pairs],
            }, target=str(target), probed_at=dt.datetime.now())
    plan = run_checks(con).plan  # re-plan: refused pairs become 'blocked'
    blocked = {hint: int(n) for hint, n in run(con, "ops/send/probe_blocked").fetchall()}
    return ProbeResult(str(target), status, len(pairs), sum(1 for v in accepted.values() if v[0]), n_assoc, plan,
                       blocked)
