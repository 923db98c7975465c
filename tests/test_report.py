"""The report: real numbers from the index, names hidden by default, and an HTML page a browser draws."""

from __future__ import annotations

import html
import inspect
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pacscopy import index as idx
from pacscopy.output import report
from pacscopy.testing.synth import make_archive

from .conftest import rows

CHROMIUM = "/usr/bin/chromium"
NAME_VOLUME = "DOE_PATIENT3 restore"   # a volume label holding a patient's name
NAME_FILE = "bad/DOE_JOHNNY_copy.dcm"  # a damaged file whose name holds a patient's name
NOTE = "called Johnny Doe's GP: the Other Hospital copy is the corrected one"


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, Path]:
    """A synthetic archive scanned as three volumes and checked, with one decision; returns (index, root).

    Names are planted where only the generic detector can find them: in a volume label, in a file
    name and in a decision note (besides DOE^JOHNNY in the demographics check's details).
    """
    from pacscopy.cli import main

    base = tmp_path_factory.mktemp("rep")
    root = base / "arch"
    make_archive(root)
    shutil.copy(root / "bad" / "zero_length.dcm", root / NAME_FILE)
    index = base / "report.duckdb"

    def cli(*args: str) -> None:
        try:
            main([*map(str, args), "--index", str(index)])
        except SystemExit as e:
            assert not e.code, args

    cli("scan", root / "vol1", "--volume", "JUKEBOX-01", "-q")
    cli("scan", root / "vol2", "--volume", NAME_VOLUME, "-q")
    cli("scan", root / "bad", root / "special", "-q")
    cli("check", "-q")
    (sop,) = rows(index, "SELECT sop_instance_uid FROM files WHERE path = $p", {"p": f"{root}/vol2/dup_conflict.dcm"})[0]
    cli("decide", "--sop", sop, "--action", "send", "--path", f"{root}/vol2/dup_conflict.dcm", "--note", NOTE)
    return index, root


@pytest.fixture(scope="module")
def index(planted) -> Path:
    return planted[0]


def _section(text: str, title: str) -> list[list[str]]:
    """The data rows of the text table under ``title``, split on runs of two or more spaces."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    header, rule = lines[start + 1], lines[start + 2]
    assert set(rule) <= {"-", " "}, rule
    out = []
    for line in lines[start + 3:]:
        if not line.strip() or re.fullmatch(r"\(\d+ rows?\)", line):
            break
        # cells by the column positions of the rule line (an empty cell stays empty)
        cols = [m.span() for m in re.finditer(r"-+", rule)]
        out.append([line[a: (cols[i + 1][0] if i + 1 < len(cols) else len(line))].strip() for i, (a, _) in enumerate(cols)])
    return out


def _names(index: Path) -> set[str]:
    """Every patient name of the index, as the checks write it and as people do."""
    out = set()
    for (n,) in rows(index, "SELECT DISTINCT norm_name(patient_name) FROM files WHERE norm_name(patient_name) IS NOT NULL"):
        out |= {n, n.replace("^", " "), n.replace("^", "_")}
    return out


# -- the numbers ------------------------------------------------------------------------------

def test_text_report_has_the_real_numbers(index, cli) -> None:
    r = cli("report", "--index", index)
    assert r.code == 0, r.err
    text = r.out
    (files,) = rows(index, "SELECT count(*) FROM files")[0]
    assert f"{files:,} files" in text

    got = {(s, reason, int(n)) for s, reason, n, _ in _section(text, "Files per status")}
    want = {(s, reason or "", n) for s, reason, n in rows(index, "SELECT status, reason, count(*) FROM files GROUP BY ALL")}
    assert got == want

    got_v = {int(n) for _, n, *_ in _section(text, "Files per volume")}
    want_v = {n for (n,) in rows(index, "SELECT count(*) FROM files GROUP BY volume")}
    assert got_v == want_v and len(_section(text, "Files per volume")) == 4

    got_f = {(c, int(f), int(i)) for c, _, f, i, *_ in _section(text, "Findings per check")}
    want_f = set(rows(index, "SELECT check_id, count(DISTINCT path), count(DISTINCT sop_instance_uid) FROM findings GROUP BY 1"))
    assert got_f == want_f and len(want_f) == 12

    got_d = {(d, int(n), int(k)) for d, n, k, _ in _section(text, "Plan: dispositions")}
    want_d = set(rows(index, "SELECT disposition, count(*), count(*) FILTER (WHERE decided) FROM plan GROUP BY 1"))
    assert got_d == want_d and sum(k for _, _, k in want_d) == 1

    got_y = {y: int(s) for y, s, *_ in _section(text, "Studies per year")}
    want_y = dict(rows(index, "SELECT year, count(*) FROM (SELECT min(substr(study_date, 1, 4)) AS year "
                              "FROM instances GROUP BY study_instance_uid) GROUP BY 1"))
    assert got_y == want_y
    assert "Examples (up to 3 per check)" in text and "Decisions" in text


def test_json_report_to_a_file_adds_up(index, cli, tmp_path) -> None:
    out = tmp_path / "report.json"
    r = cli("report", "--index", index, "--format", "json", "--out", out)
    assert r.code == 0, r.err
    assert r.out == "" and f"wrote {out}" in r.err
    data = json.loads(out.read_text(encoding="utf-8"))
    datetime.fromisoformat(data["generated_at"])
    datetime.fromisoformat(data["checked_at"])
    ix = data["index"]

    (files, nbytes) = rows(index, "SELECT count(*), sum(size) FROM files")[0]
    assert (ix["files"], ix["bytes"]) == (files, nbytes)
    assert sum(s["files"] for s in data["status"]) == files and sum(s["bytes"] for s in data["status"]) == nbytes
    assert sum(v["files"] for v in data["volumes"]) == files and sum(v["bytes"] for v in data["volumes"]) == nbytes
    assert all(v["ok"] + v["damaged"] + v["other"] == v["files"] for v in data["volumes"])
    assert {(s["status"], s["reason"], s["files"]) for s in data["status"]} == set(
        rows(index, "SELECT status, reason, count(*) FROM files GROUP BY ALL"))

    (instances, studies) = rows(index, "SELECT count(DISTINCT sop_instance_uid) FILTER (WHERE status IN ('ok','suspect','corrupt')), "
                                       "count(DISTINCT study_instance_uid) FILTER (WHERE status IN ('ok','suspect')) FROM files")[0]
    assert (ix["instances"], ix["studies"]) == (instances, studies)
    assert sum(y["studies"] for y in data["studies_per_year"]) == studies
    assert sum(y["studies"] for y in data["studies_per_year_modality"]) == studies
    per_year: dict[str, int] = {}
    for y in data["studies_per_year_modality"]:
        per_year[y["year"]] = per_year.get(y["year"], 0) + y["studies"]
    assert per_year == {y["year"]: y["studies"] for y in data["studies_per_year"]}
    assert {m["modality"]: m["studies"] for m in data["modalities"]} == dict(
        rows(index, "SELECT modality, count(DISTINCT study_instance_uid) FROM instances GROUP BY 1"))

    assert data["checks_run"] is True
    assert {(f["check_id"], f["files"], f["instances"]) for f in data["findings"]} == set(
        rows(index, "SELECT check_id, count(DISTINCT path), count(DISTINCT sop_instance_uid) FROM findings GROUP BY 1"))
    for f in data["findings"]:
        assert f["errors"] + f["warnings"] + f["infos"] == f["files"]
        assert 1 <= len(f["examples"]) <= min(3, f["files"])
    # only the manifest checks are clean: the planted archive has no database export
    assert data["checks_without_findings"] == ["file_without_manifest", "manifest_deleted", "manifest_mismatch",
                                               "manifest_without_file"]
    assert {(d["disposition"], d["instances"], d["decided"], d["bytes"]) for d in data["dispositions"]} == set(
        rows(index, "SELECT disposition, count(*), count(*) FILTER (WHERE decided), sum(size) FROM plan GROUP BY 1"))
    (planned,) = rows(index, "SELECT count(*) FROM plan")[0]
    assert sum(d["instances"] for d in data["dispositions"]) == planned
    assert data["decisions"]["total"] == 1 and data["decisions"]["rows"][0]["action"] == "send"
    assert data["decisions"]["rows"][0]["auto_disposition"] == "hold"


def test_report_on_an_index_never_checked(tmp_path, cli) -> None:
    root = tmp_path / "clean"
    make_archive(root, patients=1, defects=False, conflicts=False, specials=False)
    index = tmp_path / "u.duckdb"
    assert cli("scan", root, "--index", index, "-q").code == 0
    r = cli("report", "--index", index)
    assert r.code == 0, r.err
    assert "checks have not been run" in r.out and "Files per status" in r.out
    r = cli("report", "--index", index, "--format", "json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["checks_run"] is False and data["findings"] == [] and data["dispositions"] == []
    assert any("checks have not been run" in n for n in data["notices"])
    assert data["index"]["files"] == rows(index, "SELECT count(*) FROM files")[0][0]
    r = cli("report", "--index", index, "--format", "html")
    assert r.code == 0 and "checks have not been run" in r.out


def test_report_errors_are_one_line(index, tmp_path, cli) -> None:
    r = cli("report", "--index", tmp_path / "nothing.duckdb")
    assert r.code == 2 and "no index at" in r.err and len(r.err.strip().splitlines()) == 1
    r = cli("report", "--index", index, "--out", tmp_path / "no" / "such" / "dir.html", "--format", "html")
    assert r.code == 2 and "cannot write" in r.err


# -- patient names ----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["table", "json", "html"])
def test_names_hidden_unless_show_phi(index, cli, fmt) -> None:
    names = _names(index)
    assert {"DOE^JOHNNY", "DOE^PATIENT2", "DOE_PATIENT3"} <= names
    r = cli("report", "--index", index, "--format", fmt)
    assert r.code == 0, r.err
    up = r.out.upper()
    leaked = sorted(n for n in names | {"JOHNNY DOE", NAME_VOLUME.upper(), "DOE_JOHNNY"} if n in up)
    assert leaked == [], f"patient names in the {fmt} report: {leaked}"
    assert report.HIDDEN in r.out and "--show-phi" in r.out

    r = cli("report", "--index", index, "--format", fmt, "--show-phi")
    assert r.code == 0, r.err
    for shown in ("DOE^JOHNNY", "DOE^PATIENT2", NAME_VOLUME, NAME_FILE, NOTE.split(":")[0]):
        if fmt == "html":
            shown = html_escape(shown)
        assert shown in r.out, f"{shown!r} missing from the {fmt} report with --show-phi"
    assert report.HIDDEN not in r.out


def test_hidden_names_keep_the_numbers(index) -> None:
    con = idx.open_index(str(index), read_only=True)
    try:
        hidden, shown = report.build(con), report.build(con, show_phi=True)
    finally:
        con.close()
    for key in ("status", "modalities", "studies_per_year", "studies_per_year_modality", "dispositions"):
        assert hidden[key] == shown[key], key
    assert [v["files"] for v in hidden["volumes"]] == [v["files"] for v in shown["volumes"]]
    assert [v["volume"] for v in hidden["volumes"]].count(report.HIDDEN) == 1
    demo = next(f for f in hidden["findings"] if f["check_id"] == "patient_id_inconsistent_demographics")
    assert {x["detail"] for x in demo["examples"]} == {report.HIDDEN}
    corrupt = next(f for f in hidden["findings"] if f["check_id"] == "corrupt_file")
    assert report.HIDDEN in [x["path"] for x in corrupt["examples"]]  # the file named after a patient
    assert hidden["decisions"]["rows"][0]["note"] == report.HIDDEN
    assert shown["decisions"]["rows"][0]["note"] == NOTE


# -- HTML -------------------------------------------------------------------------------------

def _html_of(index: Path, **kw: object) -> tuple[dict, str]:
    con = idx.open_index(str(index), read_only=True)
    try:
        data = report.build(con, **kw)  # type: ignore[arg-type]
    finally:
        con.close()
    return data, report.to_html(data)


def test_html_is_self_contained_and_escaped(index) -> None:
    data, page = _html_of(index)
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:|//)""", page, re.I)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp and "default-src 'none'" in html_unescape(csp.group(1))
    for chart in ("studies_per_year", "findings", "dispositions"):
        assert f'<svg class="chart" data-chart="{chart}"' in page
    assert "<rect" not in page  # every bar is drawn by the script, in the browser
    for title in ("Files per status", "Files per volume", "Findings", "Dispositions", "Plan", "Decisions"):
        assert f">{title}<" in page or f">{title} " in page

    evil = '</script><script>alert(1)</script><!-- & "x" \u2028'
    data["volumes"][0]["volume"] = evil
    data["findings"][0]["examples"][0]["detail"] = evil
    page = report.to_html(data)
    assert "alert(1)</script>" not in page and page.count("</script>") == 2
    assert html_escape(evil) in page
    embedded = page.split('<script type="application/json" id="report-data">', 1)[1].split("</script>", 1)[0]
    back = json.loads(embedded)
    assert back["volumes"][0]["volume"] == evil and back["findings"][0]["examples"][0]["detail"] == evil


def html_escape(s: str) -> str:
    return html.escape(s, quote=True)


def html_unescape(s: str) -> str:
    return html.unescape(s)


class _Dom(HTMLParser):
    """Charts drawn in a dumped DOM: bars per svg.chart, and body's data-charts-drawn."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn: str | None = None
        self.bars: dict[str, int] = {}
        self.chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.drawn = a.get("data-charts-drawn")
        elif tag == "svg" and "chart" in (a.get("class") or "").split():
            self.chart = a.get("data-chart") or "?"
            self.bars.setdefault(self.chart, 0)
        elif tag == "rect" and self.chart and "bar" in (a.get("class") or "").split():
            self.bars[self.chart] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.chart = None


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the inflated scanlines of a PNG (no imaging library needed)."""
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos: pos + 4])
        kind, body = blob[pos + 4: pos + 8], blob[pos + 8: pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed")


@needs_chromium
def test_chromium_draws_the_charts(index, cli, tmp_path) -> None:
    page = tmp_path / "report.html"
    r = cli("report", "--index", index, "--format", "html", "--out", page)
    assert r.code == 0, r.err
    res = _chromium(tmp_path, "--dump-dom", page.as_uri())
    dom = _Dom()
    dom.feed(res.stdout)
    assert dom.drawn == "3", f"charts not drawn (rc {res.returncode}): {res.stderr[-2000:]}"
    assert set(dom.bars) == {"studies_per_year", "findings", "dispositions"}
    assert all(n >= 1 for n in dom.bars.values()), dom.bars
    (n_disp,) = rows(index, "SELECT count(DISTINCT disposition) FROM plan")[0]
    (n_checks,) = rows(index, "SELECT count(DISTINCT check_id) FROM findings")[0]
    data = json.loads(cli("report", "--index", index, "--format", "json").out)
    assert dom.bars["dispositions"] == n_disp
    assert dom.bars["findings"] == n_checks
    assert dom.bars["studies_per_year"] == len([y for y in data["studies_per_year_modality"] if y["studies"]])

    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000
    width, height, pixels = _png_pixels(shot)
    assert (width, height) == (1200, 2000)
    assert len(set(pixels)) > 64, "the screenshot is blank"


@needs_chromium
def test_chromium_draws_empty_charts_before_check(tmp_path, cli) -> None:
    root = tmp_path / "clean"
    make_archive(root, patients=1, defects=False, conflicts=False, specials=False)
    index = tmp_path / "u.duckdb"
    assert cli("scan", root, "--index", index, "-q").code == 0
    page = tmp_path / "report.html"
    assert cli("report", "--index", index, "--format", "html", "--out", page).code == 0
    dom = _Dom()
    dom.feed(_chromium(tmp_path, "--dump-dom", page.as_uri()).stdout)
    assert dom.drawn == "3"
    assert dom.bars["studies_per_year"] >= 1 and dom.bars["findings"] == 0 and dom.bars["dispositions"] == 0


@needs_chromium
def test_chromium_draws_the_reconciliation_in_the_reports_look(index, cli, tmp_path) -> None:
    page = tmp_path / "rec.html"
    args = ("reconcile", "--target", "NOBODY@127.0.0.1:104", "--no-query", "--index", index)
    r = cli(*args, "--format", "html", "--out", page)
    assert r.code == 1 and "NOT complete" in r.err  # nothing was sent
    totals = json.loads(cli(*args, "--format", "json").out)["totals"]
    dom = _Dom()
    dom.feed(_chromium(tmp_path, "--dump-dom", page.as_uri()).stdout)
    assert dom.drawn == "1" and dom.bars == {"final_states": len(totals)}
    # one product: the same stylesheet and chart script as the report
    text = page.read_text(encoding="utf-8")
    report_page = cli("report", "--index", index, "--format", "html").out
    for tag in ("style", "script>"):
        assert text.split(f"<{tag}", 1)[1].split("</")[0] == report_page.split(f"<{tag}", 1)[1].split("</")[0]


# -- the SQL ----------------------------------------------------------------------------------

def test_every_report_sql_file_runs(index, monkeypatch) -> None:
    shipped = {f"report/{p.stem}" for p in (idx.sql_dir() / "report").glob("*.sql")}
    used: set[str] = set()
    real = idx.load_sql

    def spy(name: str) -> str:
        used.add(name)
        return real(name)

    monkeypatch.setattr(idx, "load_sql", spy)
    con = idx.open_index(str(index), read_only=True)
    try:
        report.build(con)
    finally:
        con.close()
    assert {u for u in used if u.startswith("report/")} == shipped
    # the SQL lives in sql/report, not in the module
    assert not re.search(r"\b(SELECT|FROM|WHERE)\s", inspect.getsource(report))


def test_unplanned_instances_are_counted_as_the_reference_counts_them(tmp_path) -> None:
    """Instances scanned after the last check (new UIDs, a second copy of one, a corrupt one; not a
    missing file, not a file without a UID) are named in a notice: the anti join of check_state.sql
    counts what the correlated NOT EXISTS it replaced counted."""
    from pacscopy.check.checks import run_checks
    from pacscopy.testing import scale

    path = str(tmp_path / "u.duckdb")
    con = idx.open_index(path, create=True)
    try:
        scale.fill(con, 3000)
        run_checks(con)
        con.execute("""
            INSERT INTO files
            SELECT f.* REPLACE ('/new/' || i AS path, encode('/new/' || i) AS path_bytes,
                              CASE WHEN i = 4 THEN 'corrupt' WHEN i = 5 THEN 'missing' ELSE 'ok' END AS status,
                              CASE WHEN i = 6 THEN NULL ELSE '9.8.7.' || (i % 4) END AS sop_instance_uid)
            FROM (SELECT * FROM files LIMIT 1) f CROSS JOIN range(8) t(i)""")  # 9.8.7.0-3 twice; 4: corrupt; 5: missing
        reference = con.execute("""
            SELECT count(DISTINCT f.sop_instance_uid) FROM files f
            WHERE f.status IN ('ok', 'suspect', 'corrupt') AND f.sop_instance_uid IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM plan_auto p WHERE p.sop_instance_uid = f.sop_instance_uid)""").fetchone()[0]
        data = report.build(con)
    finally:
        con.close()
    assert reference == 4
    assert "4 instances scanned after the last check are not in the plan: run 'pacscopy check' again" in data["notices"]
