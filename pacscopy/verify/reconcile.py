"""Reconcile: account for every SOPInstanceUID of the index against one target.

Each instance in the plan gets one final state (table macro ``final_states``,
last defined in ``sql/schema/0010_living.sql`` on the evidence ordering of
``0006_verify_evidence.sql``): ``verified`` on the target, excluded with
its recorded reason (``excluded_corrupt``, ``excluded_held``,
``excluded_blocked``, ``excluded_decision``, ``excluded_deleted``), or a problem (``not_sent``,
``failed``, ``stored_unverified``, ``missing_on_target``, ``mismatch``,
``disputed``: the strongest evidence and a weaker later result disagree; and, as the
source changes, ``update_pending``, ``stale_on_target``, ``deleted_in_source``,
``awaiting_decision``: macro ``books``). The
migration is complete only when there are no problems. Study by study, the
target's own count (NumberOfStudyRelatedInstances by C-FIND) is compared with
what was planned and stored.

Nothing here holds every instance or every study in Python: the final states are a temp table
in the index, the problem lists a top-N, and the per-study table (one row per study: 133,000 at
20 million files) is spooled as it is read to an owner-only temporary file (:class:`StudyTable`),
read back row by row by the target's study counts and by the JSON output (:func:`json_chunks`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

from pacscopy.dicom.peer import Target
from pacscopy.dicom.scu import FIND, associate, find
from pacscopy.errors import PacscopyError, VerifyError
from pacscopy.index import open_index, run
from pacscopy.manifest import reconcile as manifest_reconcile

DONE = ("verified",)
EXCLUDED = ("excluded_corrupt", "excluded_held", "excluded_blocked", "excluded_decision", "excluded_deleted")
#: Not complete while any instance is in one of these (issue 14 adds the living-data states:
#: the source moved on, or a person has to decide).
PROBLEMS = ("not_sent", "failed", "stored_unverified", "missing_on_target", "mismatch", "disputed",
            "update_pending", "stale_on_target", "deleted_in_source", "awaiting_decision", "unaccounted")
#: Every final state (``totals`` holds those that occur).
STATES = DONE + PROBLEMS[:-1] + EXCLUDED


#: Study rows read from the index per fetch, and asked of the target per association.
STUDY_BATCH = 1000


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class StudyTable:
    """The per-study rows of a reconciliation, spooled as they come to an owner-only temporary
    file (JSON lines, removed with the object); iterated row by row, never loaded whole."""

    def __init__(self, rows: Iterable[dict[str, Any]] = ()) -> None:
        fd, self.path = tempfile.mkstemp(prefix="pacscopy-studies-", suffix=".jsonl")  # mode 0600
        self._finalizer = weakref.finalize(self, _unlink, self.path)
        self.n = 0
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, default=str, ensure_ascii=False) + "\n")
                self.n += 1

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)

    def head(self, n: int) -> list[dict[str, Any]]:
        """The first ``n`` rows."""
        return list(itertools.islice(self, n))

    def close(self) -> None:
        """Remove the spool now (else when the object goes)."""
        self._finalizer()


def _study_rows(cur: duckdb.DuckDBPyConnection) -> Iterator[dict[str, Any]]:
    cols = [d[0] for d in cur.description or ()]
    while batch := cur.fetchmany(STUDY_BATCH):
        yield from (dict(zip(cols, r)) for r in batch)


@dataclass
class Reconciliation:
    target: str
    generated_at: str
    totals: dict[str, int] = field(default_factory=dict)
    instances: int = 0
    complete: bool = False
    studies: StudyTable = field(default_factory=StudyTable)
    problems: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    unidentified_files: list[dict[str, Any]] = field(default_factory=list)
    target_queried: bool = False
    target_error: str | None = None
    manifest: dict[str, Any] | None = None  # against the old PACS's database (pacscopy.manifest.reconcile)
    #: where the per-instance states came from: "kept" (status's, current), "counted and kept"
    #: (evaluated in full now, kept for the next run), "counted" (evaluated, the index read-only)
    states: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def study_counts(target: Target, studies: list[str], calling_ae: str = "PACSCOPY",
                 timeout: float = 30) -> dict[str, int | None]:
    """NumberOfStudyRelatedInstances per study, by C-FIND at STUDY level (None: not found)."""
    from pydicom.dataset import Dataset
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    assoc = associate(target, calling_ae, timeout, [(FIND, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])],
                      "C-FIND", error=VerifyError)
    out: dict[str, int | None] = {}
    try:
        for study in studies:
            q = Dataset()
            q.QueryRetrieveLevel = "STUDY"
            q.StudyInstanceUID = study
            q.NumberOfStudyRelatedInstances = ""
            n: int | None = None
            for ident in find(assoc, q, error=VerifyError):
                v = ident.get("NumberOfStudyRelatedInstances")
                n = int(v) if v not in (None, "") else -1
            out[study] = n
    finally:
        if assoc.is_established:
            assoc.release()
    return out


def open_for(index_path: str, target: Target) -> duckdb.DuckDBPyConnection:
    """The index opened for :func:`reconcile`: read-only when the states status keeps for ``target``
    hold for it; else read-write if it can be had at once (the full evaluation reconcile then makes
    is kept, for the next reconcile and status), else read-only (evaluated, not kept)."""
    from pacscopy.send import status_counts

    con = open_index(index_path, read_only=True)
    try:
        if status_counts.kept(con, str(target)) is not None or not os.access(index_path, os.W_OK):
            return con
    except BaseException:
        con.close()
        raise
    con.close()
    try:  # a full open: migrated, so that the evaluation finds this pacscopy's macros
        return open_index(index_path, wait=0.0)
    except (PacscopyError, duckdb.Error):
        return open_index(index_path, read_only=True)


def reconcile(con: duckdb.DuckDBPyConnection, target: Target, *, query_target: bool = True,
              calling_ae: str = "PACSCOPY", timeout: float = 30, limit: int = 1000,
              on_total: Callable[[int], None] | None = None,
              on_progress: Callable[[int], None] | None = None) -> Reconciliation:
    """Build the reconciliation for ``target`` (asks the target for study counts unless told not to).

    Every instance's state comes from table ``status_instances``: the states status keeps
    (:mod:`pacscopy.send.status_counts`) when they hold for the index now; else evaluated in full
    once (its slices told to ``on_total`` and ``on_progress``), and kept for the next reconcile and
    status when ``con`` may write (else into a temporary table of the same name, dropped at the end).
    """
    from pacscopy.send import status_counts

    rec = Reconciliation(str(target), dt.datetime.now().isoformat(timespec="seconds"))
    t = str(target)
    shadow = False
    if status_counts.kept(con, t) is not None:
        rec.states = "kept"
    elif _read_only(con):
        status_counts.evaluate(con, t, on_total=on_total, on_progress=on_progress)
        shadow, rec.states = True, "counted"
    else:
        status_counts.recount(con, t, on_total=on_total, on_progress=on_progress)
        rec.states = "counted and kept"
    try:
        _fill(con, rec, target, query_target=query_target, calling_ae=calling_ae, timeout=timeout, limit=limit)
    finally:
        if shadow:
            status_counts.drop_evaluated(con)
    return rec


def _read_only(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT current_setting('access_mode')").fetchone()
    return bool(row and str(row[0]).lower() == "read_only")


def _fill(con: duckdb.DuckDBPyConnection, rec: Reconciliation, target: Target, *, query_target: bool,
          calling_ae: str, timeout: float, limit: int) -> None:
    from pacscopy.send import status_counts

    p: dict[str, Any] = {"target": str(target)}
    rec.totals = {r[0]: r[1] for r in run(con, "reconcile/totals", p).fetchall()}
    rec.instances = sum(rec.totals.values())
    rec.studies = StudyTable(_study_rows(run(con, "reconcile/studies", p)))
    # only the first ``limit`` of each kind reach Python (a top-N by key in SQL), never every
    # instance; their rows and reasons are evaluated for those instances alone (slices of the books)
    lists = [(states, rows) for states, rows in ((PROBLEMS, rec.problems), (EXCLUDED, rec.excluded))
             if any(rec.totals.get(s) for s in states)]
    listed = [uid for states, _ in lists
              for (uid,) in run(con, "reconcile/first", dict(p, states=list(states), limit=limit)).fetchall()]
    m = manifest_reconcile.manifest_counts(con, str(target), limit)
    if m is not None:
        listed += manifest_reconcile.first_problems(con, str(target), m, limit)
    if listed:
        with status_counts.sliced(con, listed):
            for states, rows in lists:
                cur = run(con, "reconcile/final_states", dict(p, states=list(states), limit=limit))
                cols = [d[0] for d in cur.description]
                rows.extend(dict(zip(cols, r)) for r in cur.fetchall())
            if m is not None:
                manifest_reconcile.fill_problems(con, str(target), m, limit)
    cur = run(con, "reconcile/unidentified_files")
    rec.unidentified_files = [dict(zip(("status", "reason", "files"), r)) for r in cur.fetchall()]
    problems = sum(rec.totals.get(k, 0) for k in PROBLEMS)
    rec.manifest = m
    rec.complete = rec.instances > 0 and problems == 0 and manifest_reconcile.complete(rec.manifest)
    if query_target:
        query_studies(rec, target, calling_ae, timeout)


def query_studies(rec: Reconciliation, target: Target, calling_ae: str = "PACSCOPY", timeout: float = 30) -> None:
    """Ask the target how many instances it holds of each study of ``rec`` (no index needed: the
    CLI closes the index first, so that a send's merges go on while the target answers).

    :data:`STUDY_BATCH` studies per association, read from and written to the spool as they go."""
    if not rec.studies:
        return
    rec.target_queried = True

    def annotated() -> Iterator[dict[str, Any]]:
        it = iter(rec.studies)
        while batch := list(itertools.islice(it, STUDY_BATCH)):
            counts: dict[str, int | None] = {}
            if rec.target_error is None:
                try:
                    counts = study_counts(target, [s["study_instance_uid"] for s in batch], calling_ae, timeout)
                except VerifyError as e:
                    rec.target_queried, rec.target_error = False, str(e)
            for s in batch:
                _study_state(s, counts.get(s["study_instance_uid"]), rec.target_error is None)
                yield s

    old = rec.studies
    rec.studies = StudyTable(annotated())
    old.close()
    if rec.target_error is not None:  # a later batch failed: no study is said to be queried
        old = rec.studies
        rec.studies = StudyTable(dict(s, on_target=None, study_state="not queried") for s in old)
        old.close()


def _study_state(s: dict[str, Any], n: int | None, queried: bool) -> None:
    s["on_target"] = n
    if not queried:
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


def to_text(rec: Reconciliation) -> str:
    from pacscopy.output.render import table

    lines = [f"reconciliation against {rec.target} at {rec.generated_at}", ""]
    rows = [(k, v) for k, v in sorted(rec.totals.items(), key=lambda kv: (kv[0] not in DONE, kv[0])) if v]
    lines.append(table(["final state", "instances"], rows + [("total", rec.instances)]))
    bad_studies = list(itertools.islice(
        (s for s in rec.studies if s.get("study_state") not in (None, "ok", "excluded")), 50))
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
    lines.append(_verdict(rec))
    return "\n".join(lines)


def to_json(rec: Reconciliation) -> str:
    return "".join(json_chunks(rec))


def json_chunks(rec: Reconciliation) -> Iterator[str]:
    """The reconciliation as JSON, in pieces: the per-study rows are read from the spool as written."""
    head = json.dumps({k: v for k, v in rec.as_dict().items() if k != "studies"},
                      indent=1, default=str, ensure_ascii=False)
    yield head[:-2] + ',\n "studies": ['
    for i, s in enumerate(rec.studies):
        yield ("\n  " if i == 0 else ",\n  ") + json.dumps(s, default=str, ensure_ascii=False)
    yield "\n ]\n}"


def to_html(rec: Reconciliation) -> str:
    """One self-contained page in the report's look (templates/reconcile.html.j2): a chart of the final states,
    the studies and the problem lists."""
    from pacscopy.output import html

    states = sorted(rec.totals.items(), key=lambda kv: -kv[1])
    m = rec.manifest
    data: dict[str, Any] = {"final_states": [{"state": k, "instances": n} for k, n in states]}
    if m is not None:
        data["manifest_locations"] = [{k: r[k] for k in ("location", "known", "found", "missing", "deleted")}
                                      for r in m["locations"][:60]]
    return html.page(
        "reconcile.html.j2", f"pacscopy reconciliation – {rec.target}", data,
        r=rec, studies=rec.studies.head(500), verdict=_verdict(rec), states=states, m=m,
        manifest_totals=[(scope, k, v) for scope, key in (("manifest", "manifest"), ("not in manifest", "not_in_manifest"))
                         for k, v in sorted(m["totals"][key].items())] if m else [],
        verified=sum(rec.totals.get(k, 0) for k in DONE),
        excluded=sum(rec.totals.get(k, 0) for k in EXCLUDED),
        problems=sum(rec.totals.get(k, 0) for k in PROBLEMS),
    )


def _verdict(rec: Reconciliation) -> str:
    if rec.complete:
        return "COMPLETE: every instance is verified on the target or excluded with a recorded reason"
    lost = rec.manifest["lost_no_file"] if rec.manifest else 0
    return (f"NOT COMPLETE: {sum(rec.totals.get(k, 0) for k in PROBLEMS)} instances are not accounted for"
            + (f", {lost} known to the old PACS's database have no file (lost_no_file)" if lost else ""))
