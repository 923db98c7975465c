"""Reconcile: account for every SOPInstanceUID of the index against one target.

Each instance in the plan gets one final state (table macro ``final_states``
in ``sql/schema/0006_verify_evidence.sql``): ``verified`` on the target, excluded with
its recorded reason (``excluded_corrupt``, ``excluded_held``,
``excluded_blocked``, ``excluded_decision``), or a problem (``not_sent``,
``failed``, ``stored_unverified``, ``missing_on_target``, ``mismatch``,
``disputed``: the strongest evidence and a weaker later result disagree). The
migration is complete only when there are no problems. Study by study, the
target's own count (NumberOfStudyRelatedInstances by C-FIND) is compared with
what was planned and stored.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from pacscopy.dicom.net import Target, make_ae, nodelay_handlers
from pacscopy.index import run
from pacscopy.manifest import reconcile as manifest_reconcile
from pacscopy.verify.verify import FIND, VerifyError, _keep_responses

DONE = ("verified",)
EXCLUDED = ("excluded_corrupt", "excluded_held", "excluded_blocked", "excluded_decision")
PROBLEMS = ("not_sent", "failed", "stored_unverified", "missing_on_target", "mismatch", "disputed", "unaccounted")


@dataclass
class Reconciliation:
    target: str
    generated_at: str
    totals: dict[str, int] = field(default_factory=dict)
    instances: int = 0
    complete: bool = False
    studies: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    unidentified_files: list[dict[str, Any]] = field(default_factory=list)
    target_queried: bool = False
    target_error: str | None = None
    manifest: dict[str, Any] | None = None  # against the old PACS's database (pacscopy.manifest.reconcile)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def study_counts(target: Target, studies: list[str], calling_ae: str = "PACSCOPY",
                 timeout: float = 30) -> dict[str, int | None]:
    """NumberOfStudyRelatedInstances per study, by C-FIND at STUDY level (None: not found)."""
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ae = make_ae(calling_ae, timeout)
    ae.add_requested_context(FIND, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate(target.host, target.port, ae_title=target.ae, evt_handlers=nodelay_handlers())
    if not assoc.is_established:
        raise VerifyError(f"{target} could not be reached for C-FIND")
    _keep_responses(assoc)
    out: dict[str, int | None] = {}
    try:
        for study in studies:
            q = Dataset()
            q.QueryRetrieveLevel = "STUDY"
            q.StudyInstanceUID = study
            q.NumberOfStudyRelatedInstances = ""
            n: int | None = None
            for status, ident in assoc.send_c_find(q, FIND):
                if not status or "Status" not in status:
                    raise VerifyError(f"{target} stopped answering C-FIND")
                st = int(status.Status)
                if st in (0xFF00, 0xFF01) and ident is not None:
                    v = ident.get("NumberOfStudyRelatedInstances")
                    n = int(v) if v not in (None, "") else -1
                elif st not in (0x0000,):
                    raise VerifyError(f"{target} refused C-FIND at STUDY level (status 0x{st:04X})")
            out[study] = n
    finally:
        if assoc.is_established:
            assoc.release()
    return out


def reconcile(con: duckdb.DuckDBPyConnection, target: Target, *, query_target: bool = True,
              calling_ae: str = "PACSCOPY", timeout: float = 30, limit: int = 1000) -> Reconciliation:
    """Build the reconciliation for ``target`` (asks the target for study counts unless told not to)."""
    rec = Reconciliation(str(target), dt.datetime.now().isoformat(timespec="seconds"))
    p = {"target": str(target)}
    rec.totals = {r[0]: r[1] for r in run(con, "reconcile/totals", p).fetchall()}
    rec.instances = sum(rec.totals.values())
    cur = run(con, "reconcile/studies", p)
    cols = [d[0] for d in cur.description]
    rec.studies = [dict(zip(cols, r)) for r in cur.fetchall()]
    cur = run(con, "reconcile/final_states", p)
    cols = [d[0] for d in cur.description]
    for r in cur.fetchall():
        row = dict(zip(cols, r))
        if row["final_state"] in PROBLEMS and len(rec.problems) < limit:
            rec.problems.append(row)
        elif row["final_state"] in EXCLUDED and len(rec.excluded) < limit:
            rec.excluded.append(row)
    cur = run(con, "reconcile/unidentified_files")
    rec.unidentified_files = [dict(zip(("status", "reason", "files"), r)) for r in cur.fetchall()]
    if query_target and rec.studies:
        try:
            counts = study_counts(target, [s["study_instance_uid"] for s in rec.studies], calling_ae, timeout)
            rec.target_queried = True
        except VerifyError as e:
            counts, rec.target_error = {}, str(e)
        for s in rec.studies:
            n = counts.get(s["study_instance_uid"])
            s["on_target"] = n
            if not rec.target_queried:
                s["study_state"] = "not queried"
            elif n is None:
                s["study_state"] = "missing" if s["stored"] else ("not sent" if s["planned"] else "excluded")
            elif n < 0:
                s["study_state"] = "count unknown"
            elif n < s["stored"]:
                s["study_state"] = "incomplete"
            elif n > s["stored"]:
                s["study_state"] = "extra instances on target"
            elif s["stored"] < s["planned"]:
                s["study_state"] = "partly sent"
            else:
                s["study_state"] = "ok"
    problems = sum(rec.totals.get(k, 0) for k in PROBLEMS)
    rec.manifest = manifest_reconcile.manifest_section(con, str(target), limit)
    rec.complete = rec.instances > 0 and problems == 0 and manifest_reconcile.complete(rec.manifest)
    return rec


def to_text(rec: Reconciliation) -> str:
    from pacscopy.output.render import table

    lines = [f"reconciliation against {rec.target} at {rec.generated_at}", ""]
    rows = [(k, v) for k, v in sorted(rec.totals.items(), key=lambda kv: (kv[0] not in DONE, kv[0]))]
    lines.append(table(["final state", "instances"], rows + [("total", rec.instances)]))
    bad_studies = [s for s in rec.studies if s.get("study_state") not in (None, "ok", "excluded")]
    if rec.target_error:
        lines.append(f"\ntarget not queried for study counts: {rec.target_error}")
    if bad_studies:
        lines.append("\nstudies needing attention:")
        lines.append(table(["study", "planned", "stored", "verified", "on target", "state"],
                           [(s["study_instance_uid"], s["planned"], s["stored"], s["verified"], s.get("on_target"),
                             s.get("study_state")) for s in bad_studies[:50]]))
    if rec.problems:
        lines.append("\ninstances not accounted for (first 50):")
        lines.append(table(["sop_instance_uid", "final state", "reason"],
                           [(p["sop_instance_uid"], p["final_state"], p["reason"]) for p in rec.problems[:50]],
                           max_width=90))
    if rec.unidentified_files:
        lines.append("\nfiles without a readable SOPInstanceUID (never sendable):")
        lines.append(table(["status", "reason", "files"], [tuple(u.values()) for u in rec.unidentified_files]))
    if rec.manifest is not None:
        lines.append(manifest_reconcile.to_text(rec.manifest))
    lines.append("")
    lines.append("COMPLETE: every instance is verified on the target or excluded with a recorded reason"
                 if rec.complete else
                 f"NOT COMPLETE: {sum(rec.totals.get(k, 0) for k in PROBLEMS)} instances are not accounted for"
                 + (f", {rec.manifest['lost_no_file']} known to the old PACS's database have no file (lost_no_file)"
                    if rec.manifest and rec.manifest["lost_no_file"] else ""))
    return "\n".join(lines)


def to_json(rec: Reconciliation) -> str:
    return json.dumps(rec.as_dict(), indent=1, default=str, ensure_ascii=False)


def to_html(rec: Reconciliation) -> str:
    """One self-contained page: a bar per final state (inline SVG) and the problem lists."""
    colors = {"verified": "#2e7d32", "excluded_corrupt": "#8d6e63", "excluded_held": "#f9a825",
              "excluded_blocked": "#6d4c41", "excluded_decision": "#90a4ae"}
    items = sorted(rec.totals.items(), key=lambda kv: -kv[1])
    top = max([v for _, v in items] or [1])
    bars = []
    for i, (state, n) in enumerate(items):
        w = int(520 * n / top) if top else 0
        color = colors.get(state, "#c62828")
        bars.append(f'<text x="0" y="{i * 28 + 18}" class="lbl">{html.escape(state)}</text>'
                    f'<rect class="bar" x="190" y="{i * 28 + 4}" width="{max(w, 1)}" height="20" fill="{color}"/>'
                    f'<text x="{196 + w}" y="{i * 28 + 19}">{n}</text>')
    svg = (f'<svg class="chart" data-chart="final_states" width="800" height="{len(items) * 28 + 10}" '
           f'xmlns="http://www.w3.org/2000/svg">{"".join(bars)}</svg>')

    def rows(data: list[dict[str, Any]], keys: list[str]) -> str:
        head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(d.get(k, '') if d.get(k) is not None else ''))}</td>"
                                         for k in keys) + "</tr>" for d in data)
        return f"<table><tr>{head}</tr>{body}</table>"

    verdict = ("COMPLETE: every instance is verified on the target or excluded with a recorded reason"
               if rec.complete else "NOT COMPLETE")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>pacscopy reconciliation</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}} .lbl{{font-size:13px}}
.verdict{{font-size:20px;font-weight:bold;color:{'#2e7d32' if rec.complete else '#c62828'}}}</style></head>
<body><h1>Reconciliation against {html.escape(rec.target)}</h1><p>{html.escape(rec.generated_at)}</p>
<p class="verdict" data-complete="{str(rec.complete).lower()}">{verdict}</p>
<h2>Final state of {rec.instances} instances</h2>{svg}
<h2>Studies</h2>{rows(rec.studies[:500], ["study_instance_uid", "planned", "stored", "verified", "excluded", "on_target", "study_state"])}
<h2>Not accounted for</h2>{rows(rec.problems[:500], ["sop_instance_uid", "final_state", "reason"])}
<h2>Excluded, with reasons</h2>{rows(rec.excluded[:500], ["sop_instance_uid", "final_state", "reason"])}
{manifest_reconcile.to_html(rec.manifest)}
</body></html>"""
