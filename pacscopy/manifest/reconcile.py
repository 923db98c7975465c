"""Reconcile against the old PACS's database: every row it knows accounted for, per location.

With a manifest loaded, completeness is judged against what the old PACS knew: every manifest
row is ``verified`` on the target or excluded with a reason (``excluded_deleted``,
``excluded_decision``, or the plan's own exclusions), a broken link still unresolved is
``lost_no_file``, and the planned instances the database does not know keep their final state
(``sql/reconcile/manifest_states.sql``). Kept apart from :mod:`pacscopy.verify.reconcile`, which
calls :func:`manifest_section` and renders the section with :func:`to_text` (and the HTML template).
"""

from __future__ import annotations

from typing import Any

import duckdb

from pacscopy.index import load_sql, run

#: Final states that keep a migration from being complete (besides the plan's own problems).
PROBLEMS = ("lost_no_file",)


def manifest_section(con: duckdb.DuckDBPyConnection, target: str, limit: int = 1000) -> dict[str, Any] | None:
    """The manifest part of a reconciliation for ``target``; None when no manifest is loaded."""
    load = run(con, "ops/manifest/latest_load").fetchone()
    if load is None:
        return None
    states = load_sql("reconcile/manifest_states").strip().rstrip(";")
    # package SQL wrapped into a temp table, so totals, locations and problems read it once
    # (the final states come from reconcile's temp table reconcile_final, computed once for ``target``)
    con.execute(f"CREATE OR REPLACE TEMP TABLE manifest_final AS {states}")
    try:
        totals: dict[str, dict[str, int]] = {"manifest": {}, "not_in_manifest": {}}
        for in_manifest, state, n in run(con, "reconcile/manifest_totals").fetchall():
            totals["manifest" if in_manifest else "not_in_manifest"][state] = n
        cur = run(con, "reconcile/manifest_locations", {"limit": limit})
        cols = [d[0] for d in cur.description]
        locations = [dict(zip(cols, r)) for r in cur.fetchall()]
        cur = run(con, "reconcile/manifest_problems", {"limit": limit})
        cols = [d[0] for d in cur.description]
        problems = [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        run(con, "reconcile/manifest_drop")
    return {
        "load_id": load[0], "loaded_at": str(load[1]), "source": load[2], "rows": load[4],
        "totals": totals, "lost_no_file": totals["manifest"].get("lost_no_file", 0),
        "locations": locations, "problems": problems,
    }


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
