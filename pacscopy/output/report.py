"""The migration report: what is in the index, what is wrong with it, what will be sent.

:func:`build` collects everything with the SQL in ``sql/report/*.sql`` (read-only,
values as ``$parameters``) into one plain dict; :func:`to_text`, :func:`to_json`
and :func:`to_html` render that dict. The HTML report is one self-contained file
(the shared stylesheet and chart script inline, no external resources, see
:mod:`pacscopy.output.html`) whose charts are drawn as SVG from the data embedded in the page.

Patient names are PHI: unless ``show_phi`` is given, every free text the report
shows (finding details, example paths, decision notes, volume labels) that
contains a patient name of the index is replaced by :data:`HIDDEN`, and the
details of the checks that quote names are hidden whatever they contain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import duckdb

from pacscopy import __version__
from pacscopy.errors import IndexFileError
from pacscopy.index import run
from pacscopy.output import html, render

HIDDEN = "[names hidden; --show-phi]"
#: checks whose details quote patient names (hidden without --show-phi, whatever they contain)
NAME_CHECKS = frozenset({"patient_id_inconsistent_demographics"})
EXAMPLES_PER_CHECK = 3
#: at most this many decisions are listed (all are counted)
DECISIONS_SHOWN = 500
SEVERITIES = ("error", "warning", "info")
NOT_CHECKED = "checks have not been run: run 'pacscopy check' for findings and the plan"


# -- collecting -------------------------------------------------------------------------------

def _rows(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cur = run(con, f"report/{name}", params)
    cols = [d[0] for d in cur.description or ()]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def build(con: duckdb.DuckDBPyConnection, *, show_phi: bool = False) -> dict[str, Any]:
    """Collect the report from the index (read-only); patient names hidden unless ``show_phi``."""
    index = _rows(con, "index_summary")[0]
    if (index.get("schema_version") or 0) < 2:
        raise IndexFileError(
            f"index {index.get('path')} was made by an older pacscopy: run 'pacscopy check' once to upgrade it"
        )
    state = _rows(con, "check_state")[0]
    checks_run = bool(state["findings"] or state["planned"])

    findings = _rows(con, "findings")
    examples: dict[str, list[dict[str, Any]]] = {}
    for r in _rows(con, "finding_examples", {"per_check": EXAMPLES_PER_CHECK}):
        examples.setdefault(r["check_id"], []).append(
            {"severity": r["severity"], "path": r["path"], "detail": r["detail"]})
    for f in findings:
        f["examples"] = examples.get(f["check_id"], [])
    clean: list[str] = []
    if checks_run:
        from pacscopy.check.checks import check_names

        found = {f["check_id"] for f in findings}
        clean = [c for c in check_names() if c not in found]

    notices: list[str] = []
    if not checks_run:
        notices.append(NOT_CHECKED)
    elif state["unplanned"]:
        notices.append(f"{state['unplanned']} instances scanned after the last check are not in the plan: "
                       "run 'pacscopy check' again")
    if index["unfinished_scans"]:
        notices.append(f"{index['unfinished_scans']} scan run(s) did not finish: scan those roots again")
    if not show_phi:
        notices.append("patient names are hidden; --show-phi shows them")

    data: dict[str, Any] = {
        "generated_at": dt.datetime.now().astimezone().replace(microsecond=0),
        "pacscopy_version": __version__,
        "show_phi": show_phi,
        "index": {k: v for k, v in index.items() if k != "schema_version"},
        "checks_run": checks_run,
        "checked_at": state["checked_at"],
        "notices": notices,
        "status": _rows(con, "status"),
        "volumes": _rows(con, "volumes"),
        "modalities": _rows(con, "modalities"),
        "studies_per_year": _rows(con, "studies_per_year"),
        "studies_per_year_modality": _rows(con, "studies_per_year_modality"),
        "findings": findings,
        "checks_without_findings": clean,
        "dispositions": _rows(con, "dispositions"),
        "decisions": {"total": state["decisions"], "shown_max": DECISIONS_SHOWN,
                      "rows": _rows(con, "decisions", {"limit": DECISIONS_SHOWN})},
    }
    if not show_phi:
        _hide_names(con, data)
    return data


def _hide_names(con: duckdb.DuckDBPyConnection, data: dict[str, Any]) -> None:
    """Replace every free text that holds a patient name (and the details of NAME_CHECKS) by HIDDEN."""
    slots: list[tuple[dict[str, Any], str]] = [(data["index"], "path")]
    slots += [(v, "volume") for v in data["volumes"]]
    for f in data["findings"]:
        for ex in f["examples"]:
            if f["check_id"] in NAME_CHECKS:
                ex["detail"] = HIDDEN
            slots += [(ex, "path"), (ex, "detail")]
    for d in data["decisions"]["rows"]:
        slots += [(d, "note"), (d, "path")]
    slots = [(obj, key) for obj, key in slots if isinstance(obj.get(key), str) and obj[key] != HIDDEN]
    if not slots:
        return
    texts = [obj[key] for obj, key in slots]
    for (i,) in run(con, "report/phi_matches", {"texts": texts}).fetchall():
        obj, key = slots[i - 1]
        obj[key] = HIDDEN


# -- plain text -------------------------------------------------------------------------------

def _n(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else ("" if v is None else str(v))


def _when(v: Any) -> str:
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ", timespec="seconds")
    return "" if v is None else str(v)


def _headline(data: dict[str, Any]) -> str:
    ix = data["index"]
    return (f"{_n(ix['files'])} files ({render.human_bytes(ix['bytes'])}); {_n(ix['instances'])} instances; "
            f"{_n(ix['studies'])} studies of {_n(ix['patients'])} patients; {_n(ix['volumes'])} volume(s); "
            f"{_n(ix['scans'])} scan run(s), last finished {_when(ix['last_scan']) or 'never'}")


def to_text(data: dict[str, Any]) -> str:
    """The report as aligned plain-text tables, for a terminal or a log."""
    hb = render.human_bytes
    out: list[str] = [
        f"pacscopy report: index {data['index']['path']}",
        f"generated {_when(data['generated_at'])} by pacscopy {data['pacscopy_version']}",
        "",
        _headline(data),
    ]
    out += [f"! {n}" for n in data["notices"]]

    def section(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], **kw: Any) -> None:
        out.extend(["", title, render.table(columns, rows, **kw)])

    section("Files per status", ["status", "reason", "files", "bytes"],
            [(r["status"], r["reason"], r["files"], hb(r["bytes"])) for r in data["status"]])
    section("Files per volume", ["volume", "files", "bytes", "ok", "damaged", "other"],
            [(r["volume"], r["files"], hb(r["bytes"]), r["ok"], r["damaged"], r["other"]) for r in data["volumes"]])
    section("Modalities (a study counts under each of its modalities)", ["modality", "studies", "instances", "bytes"],
            [(r["modality"], r["studies"], r["instances"], hb(r["bytes"])) for r in data["modalities"]])
    by_year: dict[str, list[str]] = {}
    for r in data["studies_per_year_modality"]:
        by_year.setdefault(r["year"], []).append(f"{r['modality']} {r['studies']}")
    section("Studies per year (main modality: the one with the most instances)",
            ["year", "studies", "instances", "bytes", "by main modality"],
            [(r["year"], r["studies"], r["instances"], hb(r["bytes"]), ", ".join(by_year.get(r["year"], [])))
             for r in data["studies_per_year"]])

    if not data["checks_run"]:
        out += ["", "Findings and plan: " + NOT_CHECKED]
        return "\n".join(out)
    section(f"Findings per check (checked {_when(data['checked_at']) or '-'})",
            ["check", "severity", "files", "instances", "errors", "warnings", "infos"],
            [(f["check_id"], f["severity"], f["files"], f["instances"], f["errors"], f["warnings"], f["infos"])
             for f in data["findings"]])
    if data["checks_without_findings"]:
        out.append("no findings: " + ", ".join(data["checks_without_findings"]))
    if any(f["examples"] for f in data["findings"]):
        out += ["", f"Examples (up to {EXAMPLES_PER_CHECK} per check)"]
        for f in data["findings"]:
            out.append(f"  {f['check_id']}")
            for ex in f["examples"]:
                out.append(f"    [{ex['severity']}] {ex['path']}")
                out.append(f"        {ex['detail']}")
    section("Plan: dispositions", ["disposition", "instances", "decided", "bytes"],
            [(r["disposition"], r["instances"], r["decided"], hb(r["bytes"])) for r in data["dispositions"]])
    dec = data["decisions"]
    if dec["total"]:
        title = "Decisions" + (f" (newest {len(dec['rows'])} of {dec['total']})" if dec["total"] > len(dec["rows"]) else "")
        section(title, ["sop_instance_uid", "action", "rules said", "note", "decided_at", "by"],
                [(d["sop_instance_uid"], d["action"], d["auto_disposition"], d["note"], _when(d["decided_at"]),
                  d["decided_by"]) for d in dec["rows"]], max_width=80)
    return "\n".join(out)


# -- JSON -------------------------------------------------------------------------------------

def to_json(data: dict[str, Any]) -> str:
    """The report as JSON (timestamps as ISO 8601 strings)."""
    return render.document_json(data)


# -- HTML -------------------------------------------------------------------------------------

def to_html(data: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (templates/report.html.j2; SVG charts drawn by charts.js)."""
    disp = {r["disposition"]: r for r in data["dispositions"]}
    return html.page(
        "report.html.j2", f"pacscopy report – {data['index']['path'] or 'index'}", data, d=data,
        errors=sum(f["errors"] for f in data["findings"]),
        warnings=sum(f["warnings"] for f in data["findings"]),
        to_send=disp.get("send", {}).get("instances", 0),
        not_sent=sum(r["instances"] for k, r in disp.items() if k != "send"),
        not_sent_warn=len(disp) > 1 or "send" not in disp,
        not_checked=NOT_CHECKED, examples_per_check=EXAMPLES_PER_CHECK,
    )
