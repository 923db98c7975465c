"""Decisions: a person overrides the plan for an instance (send, skip, hold), with a note.

Decisions survive every re-run of check (the plan applies them), and each records
who decided, when and why: the audit trail of a migration.
"""

from __future__ import annotations

import csv
import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from pacscopy.errors import InputError
from pacscopy.index import run, transaction
from pacscopy.send.status_counts import keeping

ACTIONS = ("send", "skip", "hold", "keep", "remove")  # keep/remove: deleted in the source (issue 14)


@dataclass
class Decision:
    sop_instance_uid: str
    action: str
    note: str
    path: str | None = None
    line: int | None = None  # the CSV line it came from


def record_decisions(con: duckdb.DuckDBPyConnection, decisions: list[Decision], source: str | None = None) -> int:
    """Validate every decision against the index, then store them all (or none).

    Set-wise: the decisions are staged in one statement and checked in SQL
    (``ops/decide_problems``), so a CSV of thousands of lines costs a few queries,
    not a few per line. ``source`` (the CSV's name) prefixes error messages.
    """
    for i, d in enumerate(decisions):
        _validate_fields(d, _where(d, source, len(decisions)))
    from pacscopy.verify.living import check_deleted_decisions

    check_deleted_decisions(con, [(d.sop_instance_uid, d.action) for d in decisions])
    user = _user()
    with transaction(con):
        run(con, "ops/check/decide_stage", {
            "line": [d.line if d.line is not None else i + 1 for i, d in enumerate(decisions)],
            "sop": [d.sop_instance_uid for d in decisions], "action": [d.action for d in decisions],
            "note": [d.note for d in decisions], "path": [d.path for d in decisions]})
        problem = run(con, "ops/check/decide_problems").fetchone()
        if problem is not None:
            _refuse(problem, source, len(decisions))
        with keeping(con, None, [d.sop_instance_uid for d in decisions]):  # status's figures stay current
            run(con, "ops/check/upsert_decision", {"by": user})
        con.execute("DROP TABLE decide_stage")
    return len(decisions)


def _where(d: Decision, source: str | None, n: int) -> str:
    if source is not None and d.line is not None:
        return f"{source}, line {d.line}"
    return "decision"


def _refuse(problem: tuple[Any, ...], source: str | None, n: int) -> None:
    kind, line, other, sop, other_action, action, path = problem
    where = f"{source}, line {line}" if source is not None else "decision"
    if kind == "twice":
        how = (f"with different actions ({other_action} on line {other}, {action} on line {line})"
               if other_action != action else f"twice (lines {other} and {line})")
        raise InputError(f"{where}: SOPInstanceUID {sop} is decided {how}: give one decision per instance")
    if kind == "unknown":
        raise InputError(f"{where}: SOPInstanceUID {sop} is not in the index")
    if kind == "manifest_only_send":  # a broken link: there is nothing to send, it can only be skipped or held
        raise InputError(f"{where}: SOPInstanceUID {sop} is known only to the old PACS's "
                         "database (no file holds it): it can be skipped or held, not sent")
    if kind == "path_without_send":
        raise InputError(f"{where}: --path only makes sense with --action send")
    if kind == "not_a_copy":
        raise InputError(f"{where}: {path} is not a file of SOPInstanceUID {sop}")
    raise InputError(f"{where}: {path} has vanished from the source (status missing)")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def _validate_fields(d: Decision, where: str) -> None:
    if d.action not in ACTIONS:
        raise InputError(f"{where}: action {d.action!r} is not one of {', '.join(ACTIONS)}")
    if not d.sop_instance_uid:
        raise InputError(f"{where}: no SOPInstanceUID given")
    if not d.note or not d.note.strip():
        raise InputError(f"{where}: a note is required (say why, for the audit trail)")


def read_decisions_csv(path: Path) -> list[Decision]:
    """Read ``sop_instance_uid,action,note[,path]`` rows; errors name the line."""
    import io

    from pacscopy import validate

    text = validate.read_text(path, "decisions file")
    out = []
    with io.StringIO(text, newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise InputError(f"{path}: the file is empty") from None
        except csv.Error as e:
            raise InputError(f"{path}, line 1: {e}") from None
        required = {"sop_instance_uid", "action", "note"}
        if not required <= set(header):
            raise InputError(
                f"{path}, line 1: header must name sop_instance_uid, action, note (and optionally path); got {','.join(header)}"
            )
        try:
            for row in reader:
                line = reader.line_num
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise InputError(f"{path}, line {line}: expected {len(header)} fields, found {len(row)}")
                rec = dict(zip(header, (c.strip() for c in row)))
                d = Decision(rec["sop_instance_uid"], rec["action"].lower(), rec["note"], rec.get("path") or None,
                             line)
                if d.action not in ACTIONS:
                    raise InputError(f"{path}, line {line}: action {rec['action']!r} is not one of {', '.join(ACTIONS)}")
                if not d.sop_instance_uid or not d.note:
                    raise InputError(f"{path}, line {line}: sop_instance_uid and note must not be empty")
                out.append(d)
        except csv.Error as e:
            raise InputError(f"{path}, line {reader.line_num}: {e}") from None
    if not out:
        raise InputError(f"{path}: no decisions in the file")
    return out
