"""The migration report: what is in the index, what is wrong with it, what will be sent.

:func:`build` collects everything with the SQL in ``sql/report/*.sql`` (read-only,
values as ``$parameters``) into one plain dict; :func:`to_text`, :func:`to_json`
and :func:`to_html` render that dict. The HTML report is one self-contained file
(inline CSS and JavaScript, no external resources) whose charts are drawn as SVG
by a small script from the data embedded in the page.

Patient names are PHI: unless ``show_phi`` is given, every free text the report
shows (finding details, example paths, decision notes, volume labels) that
contains a patient name of the index is replaced by :data:`HIDDEN`, and the
details of the checks that quote names are hidden whatever they contain.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import html
import json
from collections.abc import Sequence
from typing import Any

import duckdb

from pacscopy import __version__
from pacscopy.output import render
from pacscopy.errors import IndexFileError
from pacscopy.index import run

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

def _json_default(v: Any) -> Any:
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    return str(v)


def to_json(data: dict[str, Any]) -> str:
    """The report as JSON (timestamps as ISO 8601 strings)."""
    return json.dumps(data, default=_json_default, indent=1, ensure_ascii=False)


# -- HTML -------------------------------------------------------------------------------------

def _e(v: Any) -> str:
    return html.escape(_n(v) if isinstance(v, int) else _when(v), quote=True)


def _script_json(data: dict[str, Any]) -> str:
    """JSON that cannot end its <script> element (nor open a comment) whatever the values hold."""
    text = json.dumps(data, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _table(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]], empty: str = "nothing") -> str:
    """An HTML table; ``columns`` are (title, css class); cells are already escaped HTML."""
    if not rows:
        return f'<p class="empty">{html.escape(empty)}</p>'
    head = "".join(f'<th class="{c}">{html.escape(t)}</th>' for t, c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="{c}">{cell}</td>' for (_, c), cell in zip(columns, r)) + "</tr>" for r in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _badge(kind: str) -> str:
    return f'<span class="badge b-{html.escape(kind)}">{html.escape(kind)}</span>'


def _bytes(n: int) -> str:
    return f'<span title="{n:,} bytes">{html.escape(render.human_bytes(n))}</span>'


def to_html(data: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (inline CSS and JS, SVG charts, tables)."""
    ix = data["index"]
    t = "t"  # text column
    n = "n"  # numeric column
    disp = {r["disposition"]: r for r in data["dispositions"]}
    errors = sum(f["errors"] for f in data["findings"])
    warnings = sum(f["warnings"] for f in data["findings"])

    def card(value: str, label: str, cls: str = "") -> str:
        return f'<div class="card {cls}"><div class="v">{value}</div><div class="l">{html.escape(label)}</div></div>'

    cards = [
        card(_e(ix["files"]), "files"),
        card(html.escape(render.human_bytes(ix["bytes"])), "total size"),
        card(_e(ix["instances"]), "instances"),
        card(_e(ix["studies"]), "studies"),
        card(_e(ix["patients"]), "patients"),
        card(_e(ix["volumes"]), "volumes"),
    ]
    if data["checks_run"]:
        cards += [
            card(_e(errors), "files with errors", "bad" if errors else "good"),
            card(_e(warnings), "files with warnings", "warn" if warnings else "good"),
            card(_e(disp.get("send", {}).get("instances", 0)), "instances to send", "good"),
            card(_e(sum(r["instances"] for k, r in disp.items() if k != "send")), "instances not sent",
                 "warn" if len(disp) > 1 or "send" not in disp else "good"),
        ]

    notices = "".join(
        f'<div class="notice{" phi" if "patient names" in m else ""}">{html.escape(m)}</div>' for m in data["notices"]
    )

    status_rows = [[_e(r["status"]), _e(r["reason"]), _e(r["files"]), _bytes(r["bytes"])] for r in data["status"]]
    volume_rows = [[_e(r["volume"]), _e(r["files"]), _bytes(r["bytes"]), _e(r["ok"]), _e(r["damaged"]), _e(r["other"])]
                   for r in data["volumes"]]
    modality_rows = [[_e(r["modality"]), _e(r["studies"]), _e(r["instances"]), _bytes(r["bytes"])]
                     for r in data["modalities"]]
    year_rows = [[_e(r["year"]), _e(r["studies"]), _e(r["instances"]), _bytes(r["bytes"])]
                 for r in data["studies_per_year"]]

    if data["checks_run"]:
        finding_rows = []
        for f in data["findings"]:
            ex = "".join(
                f'<li><code>{_e(x["path"])}</code><br><span class="detail">{_e(x["detail"])}</span></li>'
                for x in f["examples"]
            )
            more = f["files"] - len(f["examples"])
            if more > 0:
                ex += f'<li class="more">… and {_e(more)} more file(s): <code>pacscopy query {_e(f["check_id"])}</code></li>'
            finding_rows.append([f'<code class="id">{_e(f["check_id"])}</code>', _badge(f["severity"]), _e(f["files"]),
                                 _e(f["instances"]), f'<ul class="examples">{ex}</ul>'])
        findings_html = _table([("check", t), ("severity", t), ("files", n), ("instances", n),
                                (f"examples (up to {EXAMPLES_PER_CHECK})", "x")], finding_rows, "no findings")
        if data["checks_without_findings"]:
            findings_html += ('<p class="clean">No findings: '
                              + ", ".join(f"<code>{_e(c)}</code>" for c in data["checks_without_findings"]) + "</p>")
        disposition_rows = [[_badge(r["disposition"]), _e(r["instances"]), _e(r["decided"]), _bytes(r["bytes"])]
                            for r in data["dispositions"]]
        plan_html = _table([("disposition", t), ("instances", n), ("decided", n), ("bytes", n)], disposition_rows,
                           "the plan is empty")
        dec = data["decisions"]
        if dec["total"]:
            shown = len(dec["rows"])
            of = f" (newest {shown:,} of {dec['total']:,})" if dec["total"] > shown else ""
            plan_html += (f"<h3>Decisions{of}</h3>"
                          + _table([("SOPInstanceUID", t), ("action", t), ("rules said", t), ("note", t),
                                    ("decided", t), ("by", t)],
                                   [[f'<code>{_e(d["sop_instance_uid"])}</code>', _badge(d["action"]),
                                     _e(d["auto_disposition"]), _e(d["note"]), _e(d["decided_at"]), _e(d["decided_by"])]
                                    for d in dec["rows"]]))
        checked = f'<p class="sub">checked {_e(data["checked_at"])}</p>' if data["checked_at"] else ""
    else:
        findings_html = plan_html = f'<p class="empty">{html.escape(NOT_CHECKED)}</p>'
        checked = ""

    style = _CSS
    script = _JS
    csp = (f"default-src 'none'; style-src 'sha256-{_sha256(style)}'; script-src 'sha256-{_sha256(script)}'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    title = f"pacscopy report – {ix['path'] or 'index'}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pacscopy {_e(data['pacscopy_version'])}">
<title>{html.escape(title)}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>pacscopy migration report</h1>
<p class="sub">index <code>{_e(ix['path'])}</code> · generated {_e(data['generated_at'])} by pacscopy {_e(data['pacscopy_version'])}
 · {_e(ix['scans'])} scan run(s), last finished {_e(ix['last_scan']) or 'never'}</p>
</header>
<main>
{notices}
<section class="cards">{''.join(cards)}</section>

<section>
<h2>Studies per year</h2>
<p class="sub">Stacked by each study's main modality (the one with the most instances); readable files (ok or suspect).</p>
<figure><svg class="chart" data-chart="studies_per_year" role="img" aria-label="studies per year by main modality"></svg></figure>
</section>

<div class="two">
<section>
<h2>Findings per check</h2>
<p class="sub">Files affected, coloured by the worst severity.</p>
<figure><svg class="chart" data-chart="findings" role="img" aria-label="files per check"></svg></figure>
</section>
<section>
<h2>Dispositions</h2>
<p class="sub">Instances per disposition of the plan (decisions applied).</p>
<figure><svg class="chart" data-chart="dispositions" role="img" aria-label="instances per disposition"></svg></figure>
</section>
</div>

<section>
<h2>Findings</h2>
{checked}
{findings_html}
</section>

<section>
<h2>Plan</h2>
{plan_html}
</section>

<div class="two">
<section>
<h2>Files per status</h2>
{_table([("status", t), ("reason", t), ("files", n), ("bytes", n)], status_rows, "no files")}
</section>
<section>
<h2>Files per volume</h2>
{_table([("volume", t), ("files", n), ("bytes", n), ("ok", n), ("damaged", n), ("other", n)], volume_rows, "no files")}
</section>
</div>

<div class="two">
<section>
<h2>Modalities</h2>
<p class="sub">A study with several modalities counts under each.</p>
{_table([("modality", t), ("studies", n), ("instances", n), ("bytes", n)], modality_rows, "no instances")}
</section>
<section>
<h2>Studies per year</h2>
{_table([("year", t), ("studies", n), ("instances", n), ("bytes", n)], year_rows, "no studies")}
</section>
</div>
</main>
<footer>pacscopy {_e(data['pacscopy_version'])} · this file may contain patient data: keep it where the index is kept</footer>
<script type="application/json" id="report-data">{_script_json(data)}</script>
<script>{script}</script>
</body>
</html>
"""


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


_CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #e3e6ec; --bg: #f6f7f9; --card: #fff; --accent: #2458a6;
        --error: #c0392b; --warning: #d68910; --info: #2e86c1; --good: #1e8449; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: var(--bg); }
header { background: #1d2b45; color: #fff; padding: 20px 32px 16px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header .sub { color: #c9d3e6; margin: 0; }
header code { color: #fff; }
main { max-width: 1280px; margin: 0 auto; padding: 20px 32px 40px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 0 0 20px;
          min-width: 0; }
h2 { font-size: 17px; margin: 0 0 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.sub { color: var(--muted); margin: 0 0 10px; font-size: 13px; }
.two { display: grid; grid-template-columns: 1fr 1fr; gap: 20px; }
.two > section { margin: 0 0 20px; }
@media (max-width: 900px) { .two { grid-template-columns: 1fr; } }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; background: none;
         border: 0; padding: 0; }
.card { background: var(--card); border: 1px solid var(--line); border-left: 4px solid var(--accent); border-radius: 8px;
        padding: 10px 14px; }
.card .v { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .l { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card.good { border-left-color: var(--good); } .card.warn { border-left-color: var(--warning); }
.card.bad { border-left-color: var(--error); }
.notice { background: #fff4e0; border: 1px solid #f0c36d; border-radius: 8px; padding: 10px 14px; margin: 0 0 12px; }
.notice.phi { background: #eef3fb; border-color: #b8c9e6; }
figure { margin: 0; }
svg.chart { display: block; width: 100%; height: auto; }
svg.chart text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--fg); }
svg.chart .axis { stroke: #9aa3b2; } svg.chart .grid { stroke: var(--line); }
svg.chart .muted { fill: var(--muted); }
svg.chart rect.bar:hover { opacity: .8; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; text-align: left; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-weight: 600;
     background: #fafbfc; }
td.n, th.n { text-align: right; white-space: nowrap; }
tbody tr:hover { background: #f8fafd; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
code.id { word-break: normal; white-space: nowrap; }
ul.examples { margin: 0; padding-left: 16px; } ul.examples li { margin: 0 0 6px; }
.detail { color: var(--muted); } .more { color: var(--muted); list-style: none; margin-left: -16px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
         background: #e8ebf0; color: var(--fg); }
.b-error, .b-quarantine { background: #fbe4e1; color: var(--error); }
.b-warning, .b-hold { background: #fdf0d9; color: #9a6207; }
.b-info { background: #e2eff9; color: var(--info); }
.b-send { background: #e0f2e7; color: var(--good); }
.b-blocked { background: #efe4f7; color: #6c3483; }
.empty, .clean { color: var(--muted); }
footer { text-align: center; color: var(--muted); font-size: 12px; padding: 0 0 24px; }
@media print { body { background: #fff; } header { background: none; color: var(--fg); }
               header .sub, header code { color: var(--muted); } section { break-inside: avoid; } }
"""

# Draws the three charts from #report-data as SVG: text only through textContent, no innerHTML.
_JS = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var PALETTE = ["#2458a6", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#8e44ad", "#f0e442",
                 "#16a085", "#c0392b"];
  var OTHER = "other";  // the modalities beyond the palette, in one grey segment
  var SEVERITY = {error: "#c0392b", warning: "#d68910", info: "#2e86c1"};
  var DISPOSITION = {send: "#1e8449", hold: "#d68910", quarantine: "#c0392b", skip: "#7f8c8d", blocked: "#6c3483"};

  function el(name, attrs, parent, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]); }
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function fmt(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function size(svg, w, h) { svg.setAttribute("viewBox", "0 0 " + w + " " + h); svg.setAttribute("width", w);
                             svg.setAttribute("height", h); }
  function empty(svg, message) { size(svg, 600, 60); el("text", {x: 8, y: 34, "class": "muted"}, svg, message); }
  // An axis for counts from 0 to at least v: about four round, whole-number steps.
  function axis(v) {
    if (!(v > 0)) return {max: 1, step: 1};
    var raw = v / 4, p = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / p;
    var step = Math.max(1, (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p);
    return {max: Math.ceil(v / step) * step, step: step};
  }
  function bar(parent, x, y, w, h, color, tip) {
    var r = el("rect", {"class": "bar", x: x, y: y, width: Math.max(w, 0), height: Math.max(h, 0), fill: color}, parent);
    el("title", {}, r, tip);
    return r;
  }

  // Horizontal bars: items [{label, value, color, tip}].
  function hbars(svg, items, unit) {
    var labelW = 12 + 7 * Math.max.apply(null, items.map(function (d) { return d.label.length; }));
    var W = Math.max(560, labelW + 320), rowH = 26, top = 6, H = top + items.length * rowH + 24;
    size(svg, W, H);
    var ax = axis(Math.max.apply(null, items.map(function (d) { return d.value; }))), max = ax.max;
    var x0 = labelW, plotW = W - labelW - 60;
    for (var t = 0; t <= max; t += ax.step) {
      var gx = x0 + plotW * t / max;
      el("line", {"class": "grid", x1: gx, x2: gx, y1: top, y2: H - 20}, svg);
      el("text", {x: gx, y: H - 6, "text-anchor": "middle", "class": "muted"}, svg, fmt(t));
    }
    items.forEach(function (d, i) {
      var y = top + i * rowH;
      el("text", {x: labelW - 8, y: y + rowH / 2 + 4, "text-anchor": "end"}, svg, d.label);
      var w = plotW * d.value / max;
      bar(svg, x0, y + 4, w, rowH - 8, d.color, d.tip || (d.label + ": " + fmt(d.value) + " " + unit));
      el("text", {x: x0 + w + 6, y: y + rowH / 2 + 4, "class": "muted"}, svg, fmt(d.value));
    });
  }

  function color(m, k) { return m === OTHER ? "#95a5a6" : PALETTE[k % PALETTE.length]; }

  // Vertical stacked bars: one bar per category, one segment per series value.
  function stacked(svg, categories, series, values, unit) {
    var W = 960, left = 48, right = 12, top = 20, plotH = 240, legendRow = 20;
    // the legend wraps: lay it out first to know the height
    var legend = [], lx = left, ly = 0;
    series.forEach(function (m, k) {
      var w = 34 + 7 * m.length;
      if (lx + w > W - right && lx > left) { lx = left; ly += legendRow; }
      legend.push({m: m, k: k, x: lx, y: ly});
      lx += w;
    });
    var H = top + plotH + 36 + ly + legendRow;
    size(svg, W, H);
    var totals = categories.map(function (c) {
      return series.reduce(function (s, m) { return s + (values[c][m] || 0); }, 0);
    });
    var ax = axis(Math.max.apply(null, totals)), max = ax.max, plotW = W - left - right;
    for (var t = 0; t <= max; t += ax.step) {
      var gy = top + plotH - plotH * t / max;
      el("line", {"class": "grid", x1: left, x2: W - right, y1: gy, y2: gy}, svg);
      el("text", {x: left - 6, y: gy + 4, "text-anchor": "end", "class": "muted"}, svg, fmt(t));
    }
    el("line", {"class": "axis", x1: left, x2: W - right, y1: top + plotH, y2: top + plotH}, svg);
    var slot = plotW / categories.length, bw = Math.min(56, slot * 0.7);
    var every = Math.ceil(48 / slot);  // label every n-th bar so that labels do not collide
    categories.forEach(function (c, i) {
      var x = left + slot * i + (slot - bw) / 2, y = top + plotH;
      series.forEach(function (m, k) {
        var v = values[c][m] || 0;
        if (!v) return;
        var h = plotH * v / max;
        y -= h;
        bar(svg, x, y, bw, h, color(m, k), c + " · " + m + ": " + fmt(v) + " " + unit);
      });
      if (slot >= 40) {
        el("text", {x: x + bw / 2, y: y - 4, "text-anchor": "middle", "class": "muted"}, svg, fmt(totals[i]));
      }
      if (i % every === 0) {
        el("text", {x: x + bw / 2, y: top + plotH + 16, "text-anchor": "middle"}, svg, c);
      }
    });
    legend.forEach(function (l) {
      var y = top + plotH + 36 + l.y;
      el("rect", {"class": "swatch", x: l.x, y: y, width: 12, height: 12, fill: color(l.m, l.k)}, svg);
      el("text", {x: l.x + 17, y: y + 10}, svg, l.m);
    });
  }

  var draw = {
    studies_per_year: function (svg) {
      var rows = data.studies_per_year_modality;
      if (!rows.length) return empty(svg, "no studies in the index");
      var categories = [], values = {}, bySeries = {};
      rows.forEach(function (r) { bySeries[r.modality] = (bySeries[r.modality] || 0) + r.studies; });
      var series = Object.keys(bySeries).sort(function (a, b) { return bySeries[b] - bySeries[a] || (a < b ? -1 : 1); });
      if (series.length > PALETTE.length) {
        series = series.slice(0, PALETTE.length - 1).concat([OTHER]);
      }
      rows.forEach(function (r) {
        if (!(r.year in values)) { values[r.year] = {}; categories.push(r.year); }
        var m = series.indexOf(r.modality) >= 0 ? r.modality : OTHER;
        values[r.year][m] = (values[r.year][m] || 0) + r.studies;
      });
      stacked(svg, categories, series, values, "studies");
    },
    findings: function (svg) {
      if (!data.checks_run) return empty(svg, "checks have not been run");
      if (!data.findings.length) return empty(svg, "no findings");
      hbars(svg, data.findings.map(function (f) {
        return {label: f.check_id, value: f.files, color: SEVERITY[f.severity] || "#7f8c8d",
                tip: f.check_id + " (" + f.severity + "): " + fmt(f.files) + " files, " + fmt(f.instances) + " instances"};
      }), "files");
    },
    dispositions: function (svg) {
      if (!data.checks_run) return empty(svg, "checks have not been run");
      if (!data.dispositions.length) return empty(svg, "the plan is empty");
      hbars(svg, data.dispositions.map(function (d) {
        return {label: d.disposition, value: d.instances, color: DISPOSITION[d.disposition] || "#7f8c8d",
                tip: d.disposition + ": " + fmt(d.instances) + " instances (" + fmt(d.decided) + " decided)"};
      }), "instances");
    }
  };

  var drawn = 0;
  Array.prototype.forEach.call(document.querySelectorAll("svg.chart"), function (svg) {
    var f = draw[svg.getAttribute("data-chart")];
    if (f) { f(svg); drawn += 1; }
  });
  document.body.dataset.chartsDrawn = String(drawn);
})();
"""
