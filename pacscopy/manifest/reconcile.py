"""Reconcile against the old PACS's database: every row it knows accounted for, per location.

With a manifest loaded, completeness is judged against what the old PACS knew: every manifest
row is ``verified`` on the target or excluded with a reason (``excluded_deleted``,
``excluded_decision``, or the plan's own exclusions), a broken link still unresolved is
``lost_no_file``, and the planned instances the database does not know keep their final state
(``sql/reconcile/manifest_counts.sql``, ``manifest_problems.sql``). Kept apart from
:mod:`pacscopy.verify.reconcile`, which calls :func:`manifest_counts`, :func:`first_problems` and
:func:`fill_problems`, and renders the section with :func:`to_text` (and the HTML template).
"""

from __future__ import annotations

from typing import Any

import duckdb

from pacscopy.index import run

#: Final states that keep a migration from being complete (besides the plan's own problems).
PROBLEMS = ("lost_no_file",)


def manifest_counts(con: duckdb.DuckDBPyConnection, target: str, limit: int = 1000) -> dict[str, Any] | None:
    """The manifest part of a reconciliation for ``target`` but its problem list (:func:`fill_problems`);
    None when no manifest is loaded. One pass by key over the manifest and the plan's states
    (table ``status_instances``: reconcile reads it, kept or evaluated)."""
    load = run(con, "ops/manifest/latest_load").fetchone()
    if load is None:
        return None
    totals: dict[str, dict[str, int]] = {"manifest": {}, "not_in_manifest": {}}
    locations: list[dict[str, Any]] = []
    cur = run(con, "reconcile/manifest_counts", {"target": target, "limit": limit})
    for kind, in_manifest, state, location, n, found, missing, deleted, verified in cur.fetchall():
        if kind == "state":
            totals["manifest" if in_manifest else "not_in_manifest"][state] = n
        else:
            locations.append({"location": location, "known": n, "found": found, "missing": missing,
                              "deleted": deleted, "verified": verified})
    return {
        "load_id": load[0], "loaded_at": str(load[1]), "source": load[2], "rows": load[4],
        "totals": totals, "lost_no_file": totals["manifest"].get("lost_no_file", 0),
        "locations": locations, "problems": [],
    }


def _has_problems(section: dict[str, Any]) -> bool:
    return any(n for states in section["totals"].values() for s, n in states.items()
               if s != "verified" and not s.startswith("excluded_"))


def first_problems(con: duckdb.DuckDBPyConnection, target: str, section: dict[str, Any], limit: int = 1000) -> list[str]:
    """The SOPInstanceUIDs of the first ``limit`` rows that keep the manifest from being complete (by key)."""
    if not _has_problems(section):
        return []
    return [r[0] for r in run(con, "reconcile/manifest_first", {"target": target, "limit": limit}).fetchall()]


def fill_problems(con: duckdb.DuckDBPyConnection, target: str, section: dict[str, Any], limit: int = 1000) -> None:
    """The section's problem list with its reasons: run over slices of the books holding the instances
    :func:`first_problems` chose (and maybe others: the first ``limit`` are the same)."""
    if not _has_problems(section):
        return
    nonempty = con.execute("SELECT EXISTS (SELECT 1 FROM manifest)").fetchone()
    cur = run(con, "reconcile/manifest_problems",
              {"target": target, "limit": limit, "manifest_rows": bool(nonempty and nonempty[0])})
    cols = [d[0] for d in cur.description]
    section["problems"] = [dict(zip(cols, r)) for r in cur.fetchall()]


def complete(section: dict[str, Any] | None) -> bool:
    """True unless the manifest still has rows that are not accounted for."""
    return section is None or not any(section["totals"]["manifest"].get(k, 0) for k in PROBLEMS)


def to_text(section: dict[str, Any] | None) -> str:
    """The manifest section of the text reconciliation ('' without a manifest)."""
    if section is None:
        return ""
    from pacscopy.output.render import table

    out = [f"\nagainst the old PACS's database (manifest load {section['load_id']}, {section['rows']} rows):"]
    rows = [("manifest", k, v) for k, v in sorted(section["totals"]["manifest"].items())]
    rows += [("not in manifest", k, v) for k, v in sorted(section["totals"]["not_in_manifest"].items())]
    out.append(table(["instances", "final state", "count"], rows))
    out.append("\nper location (known / found / missing):")
    out.append(table(["location", "known", "found", "missing", "deleted", "verified"],
                     [(r["location"], r["known"], r["found"], r["missing"], r["deleted"], r["verified"])
                      for r in section["locations"][:50]]))
    if section["problems"]:
        out.append("\nmanifest rows not accounted for (first 50):")
        out.append(table(["sop_instance_uid", "final state", "reason"],
                         [(p["sop_instance_uid"], p["final_state"], p["reason"]) for p in section["problems"][:50]],
                         max_width=90))
    return "\n".join(out)
