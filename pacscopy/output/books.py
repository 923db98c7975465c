"""The shared books' pages (README, "Several machines"): status, report and reconcile over every host.

Pure functions from :mod:`pacscopy.pg.books`'s results to text or JSON.
"""

from __future__ import annotations

import json
from typing import Any

from pacscopy.errors import InputError
from pacscopy.output.render import human_bytes, table
from pacscopy.pg.books import STATES, MigrationReconcile, MigrationReport, MigrationStatus

_NOTES = {"stored": "stored by one host", "stored_by_two_hosts": "stored by more than one host: see reconcile",
          "stored_unplanned": "stored, in no host's plan now", "sending": "claimed by a host, answer not recorded yet",
          "failed": "the latest attempt failed", "left": "planned by some host, not sent yet",
          "excluded": "no host plans to send it (reasons: reconcile --books)"}


def _states(states: dict[str, int]) -> list[str]:
    return [f"  {s + ':':22s}{states[s]:>9}" for s in STATES]


def status_text(st: MigrationStatus) -> str:
    """``status --books``: the migration's states for one target, and one line per host."""
    lines = [f"migration {st.migration.name!r}, target {st.target}: {st.in_plan} instances in the plans of "
             f"{len(st.hosts)} host(s), each counted once (as of {st.as_of:%Y-%m-%d %H:%M:%S}, books {st.url})"]
    lines += [f"{line}  {_NOTES[s]}" for s, line in zip(STATES, _states(st.states))]
    rows = [(h.name, h.share or "-", "sending" if h.running else "-", h.stored, h.sending, h.plan_instances or 0,
             f"{h.last_transfer:%Y-%m-%d %H:%M:%S}" if h.last_transfer else "-") for h in st.hosts]
    lines.append(table(["host", "share", "now", "stored", "claimed", "planned", "last transfer"], rows))
    return "\n".join(lines)


def report_text(rep: MigrationReport, fmt: str) -> str:
    """``report --books``: every host's plan by disposition and each target's states (table or json)."""
    if fmt == "json":
        return json.dumps({"migration": rep.migration.name, "migration_id": rep.migration.migration_id,
                           "dispositions": [{"host": h, "disposition": d, "instances": n, "bytes": b}
                                            for h, d, n, b in rep.dispositions],
                           "targets": [{"target": t.target, "as_of": t.as_of.isoformat(), "complete": t.complete,
                                        "states": t.states} for t in rep.targets]}, indent=2)
    if fmt != "table":
        raise InputError("report --books: --format table or json")
    lines = [f"migration {rep.migration.name!r} ({rep.migration.migration_id}), books {rep.url}", "",
             "plan by disposition (all hosts: each instance once)",
             table(["host", "disposition", "instances", "bytes"],
                   [(h or "all hosts", d, n, human_bytes(b)) for h, d, n, b in rep.dispositions])]
    for t in rep.targets:
        lines += ["", f"target {t.target} (as of {t.as_of:%Y-%m-%d %H:%M:%S}): "
                      f"{'complete' if t.complete else 'not complete'}"]
        lines += _states(t.states)
    return "\n".join(lines)


def reconcile_text(rec: MigrationReconcile, fmt: str) -> str:
    """``reconcile --books``: is every instance stored once on the target, and why not (table or json)."""
    st = rec.status
    if fmt == "json":
        problems: list[dict[str, Any]] = [p._asdict() for p in rec.problems]
        return json.dumps({"migration": st.migration.name, "migration_id": st.migration.migration_id,
                           "target": st.target, "as_of": st.as_of.isoformat(), "complete": st.complete,
                           "in_plan": st.in_plan, "states": st.states,
                           "excluded": [{"why": w, "instances": n} for w, n in rec.excluded],
                           "problems": problems,
                           "hosts": [{"name": h.name, "stored": h.stored, "share": h.share} for h in st.hosts]},
                          indent=2)
    lines = [f"migration {st.migration.name!r}, target {st.target} (as of {st.as_of:%Y-%m-%d %H:%M:%S}): "
             f"{'complete' if st.complete else 'NOT complete'}",
             f"  {st.in_plan} instances in the plans of {len(st.hosts)} host(s)"]
    lines += _states(st.states)
    if rec.excluded:
        lines.append("excluded, why:")
        lines += [f"  {n:>9}  {w}" for w, n in rec.excluded]
    if rec.problems:
        lines.append(f"not accounted for (first {len(rec.problems)}):")
        lines.append(table(["sop_instance_uid", "state", "host", "why"], [tuple(p) for p in rec.problems],
                           max_width=80))
    return "\n".join(lines)
