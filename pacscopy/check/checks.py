"""Checks: find in SQL what would go wrong on the target, before anything is sent.

Each check is one SELECT in ``sql/checks/<check_id>.sql`` returning the fixed
columns ``severity, path, sop_instance_uid, group_key, detail, recoverable``;
``run_checks`` rebuilds the ``findings`` rows of the checks it runs and then
the automatic plan, in one transaction, so a killed run leaves the previous
state intact. The one thing SQL cannot do, comparing the decoded content of
two differently encoded copies of an instance (:mod:`pacscopy.digest`), is
done in worker processes, and only for the members of duplicate groups.

A check of all checks is **incremental** (issue 12) once a first one ran: the
scan records the keys of every row it writes (``check_dirty``: old and new
values), and the next check re-evaluates only the groups those keys name. Each
check has a grouping key (:data:`SCOPES`): its findings for a file depend only
on the files sharing that key (and on tables covered by the fingerprint, see
``ops/check/fingerprint``). The check's unchanged SELECT runs over just those
files (a temporary table ``files`` shadows the real one for its duration), its
findings replace the recorded ones where they differ, and the plan is rebuilt
for the SOPInstanceUIDs concerned. A full check runs when nothing is known
about what changed (:func:`why_full`), and with ``full=True``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import duckdb

from pacscopy.digest import content_digest
from pacscopy.errors import InputError
from pacscopy.index import fetch, insert_columns, load_sql, run, run_script, sql_dir, transaction
from pacscopy.send.status_counts import keeping_if_kept, replanning

log = logging.getLogger(__name__)

#: Each shipped check's grouping key: its findings for a file depend only on the files that share
#: this key with it ("path": on the file alone). An incremental check re-runs a check over the
#: files of the groups a changed row left or joined. A check not named here (a new one, or one
#: whose findings depend on more, like manifest_without_file's count per location) runs in full
#: every time.
SCOPES: dict[str, str] = {
    "accession_multiple_patients": "accession_number",
    "study_uid_multiple_patients": "study_instance_uid",
    "series_uid_multiple_studies": "series_instance_uid",
    "patient_id_inconsistent_demographics": "patient_id",
    "corrupt_file": "sop_instance_uid",
    "duplicate_identical": "sop_instance_uid",
    "duplicate_reencoded": "sop_instance_uid",
    "duplicate_conflict": "sop_instance_uid",
    "invalid_uid": "path",
    "meta_sop_instance_mismatch": "path",
    "missing_required_attribute": "path",
    "private_sop_class": "path",
    "file_without_manifest": "path",
    "manifest_deleted": "path",
    "manifest_mismatch": "path",
}
#: Past this share of the index changed (rows recorded), a full check is cheaper than a delta.
DELTA_MAX_SHARE = 0.25
#: A grouping key whose changed groups hold more than this share of the files: its checks read
#: every file (unfiltered) in an incremental check.
WHOLE_SHARE = 0.5
#: A grouping key whose changed groups hold at most this share of the files: their files (every
#: column) are copied once and its checks read the copy; above it, each check reads the columns it
#: needs from files through a join with the changed keys (copying 4.5 M of 20 M files' rows whole,
#: spilling ~3 GB, cost more than the few checks it served).
COPY_SHARE = 0.05


def check_names() -> list[str]:
    """Every shipped check id (the file names in ``sql/checks``)."""
    return sorted(p.stem for p in (sql_dir() / "checks").glob("*.sql"))


class FindingCount(NamedTuple):
    """Findings of one check and severity."""

    check_id: str
    severity: str
    files: int
    instances: int


class DispositionCount(NamedTuple):
    """The plan for one disposition: instances, how many by a decision, bytes."""

    disposition: str
    instances: int
    decided: int
    bytes: int


@dataclass
class CheckResult:
    checks: list[str]
    hashed: int = 0
    findings: dict[str, int] = field(default_factory=dict)  # check -> files
    dispositions: dict[str, int] = field(default_factory=dict)  # disposition -> instances
    summary: list[FindingCount] = field(default_factory=list)  # every check's findings in the index
    plan: list[DispositionCount] = field(default_factory=list)
    mode: str = "full"  # full | delta | some (named checks only)
    why: str = ""  # full: why not a delta
    changed: int = 0  # delta: changed file rows (distinct paths) it started from
    scope_files: int = 0  # delta: files in the groups re-evaluated
    replanned: int = 0  # delta: SOPInstanceUIDs whose plan row was rebuilt

    def describe(self) -> str:
        """One line: how the check ran (what an incremental one re-evaluated, why a full one ran)."""
        if self.mode == "delta":
            if not self.changed:
                return "incremental check: no file changed since the last check"
            return (f"incremental check: {self.changed:,} changed file(s); {self.scope_files:,} file(s) in their "
                    f"groups re-evaluated, {self.replanned:,} instance(s) re-planned")
        if self.mode == "some":
            return "checks run in full: " + ", ".join(self.checks)
        return f"full check ({self.why})"


def plan_summary(con: duckdb.DuckDBPyConnection) -> list[DispositionCount]:
    """The plan in one table: instances, decisions and bytes per disposition."""
    return fetch(con, "ops/check/disposition_summary", DispositionCount)


def refresh_sop_classes(con: duckdb.DuckDBPyConnection) -> None:
    """Load pydicom's SOP class dictionary (names, retired, enhanced) into ``sop_classes``."""
    from pydicom._uid_dict import UID_dictionary

    cols: dict[str, list[Any]] = {k: [] for k in ("uid", "name", "keyword", "retired", "enhanced")}
    for uid, (name, kind, _info, retired, keyword) in UID_dictionary.items():
        if kind != "SOP Class":
            continue
        cols["uid"].append(uid)
        # pydicom keeps "(Retired)" only in the keyword; a user must see it wherever the class is named
        cols["name"].append(f"{name} (Retired)" if retired == "Retired" and "(Retired)" not in name else name)
        cols["keyword"].append(keyword)
        cols["retired"].append(retired == "Retired")
        cols["enhanced"].append("Enhanced" in name and "Storage" in name)
    run_script(con, "ops/check/insert_sop_classes", cols)


def run_checks(
    con: duckdb.DuckDBPyConnection,
    names: Iterable[str] | None = None,
    *,
    full: bool = False,
    on_hash_total: Callable[[int], None] | None = None,
    on_hash_progress: Callable[[int], None] | None = None,
) -> CheckResult:
    """Run the named checks (default: all), then rebuild the plan.

    All checks: incremental (only the groups of the rows scans changed since the last check)
    unless ``full`` or :func:`why_full` says a full check is needed. Named checks: those in full,
    and the whole plan; what the next incremental check starts from is left as it was.
    """
    available = check_names()
    wanted = list(names) if names else available
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise InputError(f"unknown check {unknown[0]!r}; the checks are: {', '.join(available)}")
    res = CheckResult(wanted)
    refresh_sop_classes(con)
    hashing = {"on_total": on_hash_total, "on_progress": on_hash_progress}
    if names:
        res.mode = "some"
        _run_full(con, wanted, res, None, hashing)
    else:
        fp = fingerprint(con)
        res.why = why_full(con, fp, full)
        if res.why:
            _run_full(con, wanted, res, fp, hashing)
        else:
            res.mode = "delta"
            _run_delta(con, wanted, res, fp, hashing)
    res.findings = {r[0]: r[1] for r in run(con, "ops/check/findings_per_check").fetchall()}
    res.summary = fetch(con, "ops/check/findings_summary", FindingCount)
    res.plan = plan_summary(con)
    res.dispositions = {p.disposition: p.instances for p in res.plan}
    return res


def fingerprint(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """What findings and plan depend on besides the files, one short hash per source.

    The check and plan SQL, pacscopy's version, the schema version, the SOP class dictionary,
    the probed capabilities, the manifest (its loads) and its policy, the transcoders installed.
    The PatientID map and decisions are not in it: check's output does not depend on them (the
    map is applied on the way out, decisions when the plan view is read).
    """
    from pacscopy import __version__
    from pacscopy.send.transcode import plan_params

    def h(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    out = {"pacscopy": __version__,
           "checks": h("\0".join(f"{n}\0{load_sql(f'checks/{n}')}" for n in check_names())),
           "plan": h(load_sql("ops/check/build_plan") + repr(sorted(plan_params().items())) + repr(sorted(SCOPES.items())))}
    cur = run(con, "ops/check/fingerprint")
    row = cur.fetchone()
    assert row is not None
    out.update({d[0]: str(v) for d, v in zip(cur.description, row)})
    return out


def why_full(con: duckdb.DuckDBPyConnection, fp: dict[str, str], full: bool = False) -> str:
    """Why the next check of all checks must be a full one; "" when an incremental one gives the same."""
    if full:
        return "--full"
    row = run(con, "ops/check/check_state").fetchone()
    if row is None:
        return "first check of this index"
    last, full_needed, dirty, files = row
    if full_needed:
        return "a scan changed too many files to record them one by one (rehash, or a large new volume)"
    try:
        before = json.loads(last)
    except ValueError:
        before = {}
    changed = sorted(k for k in fp if before.get(k) != fp[k])
    if changed:
        return "changed since the last check: " + ", ".join(changed)
    if dirty > max(1000, DELTA_MAX_SHARE * files):
        return f"{dirty:,} changed rows recorded, more than {DELTA_MAX_SHARE:.0%} of the index"
    return ""


def _run_full(con: duckdb.DuckDBPyConnection, wanted: list[str], res: CheckResult,
              fp: dict[str, str] | None, hashing: dict[str, Any]) -> None:
    """Every finding of the ``wanted`` checks and the whole plan, rebuilt; with ``fp``, remembered."""
    if {"duplicate_reencoded", "duplicate_conflict"} & set(wanted) or fp is not None:
        res.hashed = compute_content_hashes(con, **hashing)
    # the plan is rebuilt: status's kept figures move by the instances whose plan row changed, found by
    # comparing the new plan with the old one, which the rebuild sets aside and is dropped once compared
    with transaction(con):
        with replanning(con):
            # manifest_compare (a join of every file with the manifest) is read by manifest_mismatch and
            # by the plan: computed once, into a temporary table that shadows the view for both
            row = run(con, "ops/check/manifest_loaded").fetchone()
            kept = bool(row and row[0])
            if kept:
                run(con, "ops/check/manifest_compare_keep")
            for name in wanted:
                con.execute(load_sql("ops/check/delete_findings"), {"check_id": name})
                _insert_findings(con, name)
            _rebuild_plan(con)
            if kept:
                con.execute("DROP TABLE temp.main.manifest_compare")
            if fp is not None:
                _save_state(con, fp, res)
        run_script(con, "ops/check/plan_rebuild_end")


def _rebuild_plan(con: duckdb.DuckDBPyConnection) -> None:
    """plan_auto rebuilt whole: build_plan into a new table that replaces the old one (not a DELETE
    of every row beside the INSERT: at 50 M instances that ran DuckDB's 1 GB out of memory). The old
    one stays as ``plan_auto_replaced`` for the caller to compare and drop (``plan_rebuild_end``)."""
    from pacscopy.send.transcode import plan_params

    row = run(con, "ops/check/plan_auto_ddl").fetchone()
    assert row is not None, "plan_auto is in every migrated index"
    run_script(con, "ops/check/plan_rebuild_begin")
    con.execute(row[0])  # the table's definition as DuckDB recorded it (the package's schema)
    run_script(con, "ops/check/build_plan", plan_params())


def _check_select(name: str) -> str:
    return load_sql(f"checks/{name}").strip().rstrip(";")


def _insert_findings(con: duckdb.DuckDBPyConnection, name: str) -> None:
    # The check file is package SQL, not user input: it is wrapped, never formatted with values.
    con.execute(
        "INSERT INTO findings (check_id, severity, path, sop_instance_uid, group_key, detail, recoverable) "
        f"SELECT $check_id, severity, path, sop_instance_uid, group_key, detail, recoverable FROM ({_check_select(name)})",
        {"check_id": name},
    )


def _save_state(con: duckdb.DuckDBPyConnection, fp: dict[str, str], res: CheckResult) -> None:
    run_script(con, "ops/check/save_state", {
        "fingerprint": json.dumps(fp, sort_keys=True), "mode": res.mode, "why": res.why or None,
        "changed": res.changed, "scope_files": res.scope_files, "replanned": res.replanned})


def _run_delta(con: duckdb.DuckDBPyConnection, wanted: list[str], res: CheckResult,
               fp: dict[str, str], hashing: dict[str, Any]) -> None:
    """Re-evaluate the groups of the rows recorded in check_dirty; the rest stays as recorded.

    A temporary table ``files`` shadows the real one while each check's SELECT runs (the views
    instances and manifest_compare read it too), so the check files stay as users read them.
    """
    from pacscopy.send.transcode import plan_params

    try:
        run_script(con, "ops/check/delta_keys")
        row = con.execute("SELECT count(*) FROM temp.main.check_keys WHERE dim = 'path'").fetchone()
        res.changed = row[0] if row else 0
        sizes: dict[str, int] = {}
        if res.changed:
            run_script(con, "ops/check/delta_scope")
            cur = run(con, "ops/check/delta_scope_count")
            row = cur.fetchone()
            sizes = dict(zip((d[0] for d in cur.description), row)) if row else {}
        res.scope_files = sizes.get("scope", 0)
        # a grouping key whose changed groups hold most of the index: its checks read files as they
        # are (filtering the groups would cost more than it saves); the findings are still applied
        # only where they differ
        whole = {d for d, n in sizes.items() if d in SCOPES.values() and n > WHOLE_SHARE * sizes["files"]}
        # the groups of a key column holding a small part of the index: their files copied once for
        # all their checks; between that and WHOLE_SHARE the checks read them through a join
        copied = {d for d, n in sizes.items() if d in SCOPES.values() and n <= COPY_SHARE * sizes["files"]}
        if res.changed:
            flags = {d: d in copied for d in SCOPES.values() if d != "path"}
            run_script(con, "ops/check/delta_scope_keys", flags)
            run_script(con, "ops/check/delta_scope_files", flags)
        db = con.execute("SELECT current_database()").fetchone()
        assert db is not None
        real_files = '"' + str(db[0]).replace('"', '""') + '".main.files'
        if res.changed:
            res.hashed = compute_content_hashes(con, todo="ops/check/content_hash_todo_delta", **hashing)
        replanned: list[str] = []  # the instances re-planned: status's kept figures move them, no recount
        with transaction(con), keeping_if_kept(con, replanned) as keep:
            if res.changed:
                for name in wanted:  # the checks without a grouping key, in full (before files is shadowed)
                    if name not in SCOPES:
                        con.execute(load_sql("ops/check/delete_findings"), {"check_id": name})
                        _insert_findings(con, name)
                for dim in sorted({SCOPES[n] for n in wanted if n in SCOPES}):
                    con.execute(_scope_view(real_files, dim, "whole" if dim in whole else
                                            "copy" if dim in copied or dim == "path" else "join"))
                    for name in wanted:
                        if SCOPES.get(name) == dim:
                            con.execute(f"CREATE OR REPLACE TEMP TABLE check_new AS SELECT severity, path, "
                                        f"sop_instance_uid, group_key, detail, recoverable FROM ({_check_select(name)})")
                            run_script(con, "ops/check/delta_apply", {"check_id": name})
                con.execute("DROP VIEW temp.main.files")
                run_script(con, "ops/check/delta_replan")
                row = con.execute("SELECT count(*) FROM temp.main.check_replan_sops").fetchone()
                res.replanned = row[0] if row else 0
                if keep:
                    replanned.extend(r[0] for r in con.execute(
                        "SELECT sop_instance_uid FROM temp.main.check_replan_sops WHERE sop_instance_uid IS NOT NULL"
                    ).fetchall())
                run_script(con, "ops/check/delta_plan_files")
                run_script(con, "ops/check/build_plan", plan_params())  # their rows, deleted by delta_replan
                con.execute("DROP TABLE temp.main.files")
            _save_state(con, fp, res)
    finally:
        _drop_temp(con)


_TEMP = ("files", "check_new", "check_old", "check_changed", "check_replan", "check_replan_sops", "check_keys",
         "check_scope_flags", "check_scope_keys", "check_scope")


def _drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    """Drop an incremental check's temporary tables and the view shadowing files."""
    rows = con.execute("SELECT table_name, table_type FROM information_schema.tables "
                       "WHERE table_catalog = 'temp' AND table_name IN (SELECT unnest($names))",
                       {"names": list(_TEMP)}).fetchall()
    for name, kind in rows:  # names from _TEMP, not user input
        con.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} temp.main.{name}")


def _scope_view(real_files: str, dim: str, how: str) -> str:
    """The view shadowing ``files`` while the checks grouped by ``dim`` run: the changed rows, and
    every file whose ``dim`` is a key a changed row had or has (each such group whole, so the
    checks' findings for these files are those of a full check). ``how``: ``copy``, from the scope
    copied once (ops/check/delta_scope_files); ``join``, from files through two semi joins with the
    changed keys (a pass over the columns each check reads); ``whole``, every file of the index.
    ``real_files``: the index's files table, qualified by its catalog; ``dim``: a column of
    :data:`SCOPES` (identifiers, not values)."""
    assert dim in set(SCOPES.values()), dim
    if how == "whole":
        return f"CREATE OR REPLACE TEMP VIEW files AS SELECT * FROM {real_files}"
    if how == "copy":
        return ("CREATE OR REPLACE TEMP VIEW files AS SELECT * EXCLUDE (rid) FROM temp.main.check_scope "
                f"WHERE rid IN (SELECT rid FROM temp.main.check_scope_keys WHERE path OR {dim})")
    assert how == "join" and dim != "path", (how, dim)
    changed = "path IN (SELECT k FROM temp.main.check_keys WHERE dim = 'path')"
    # two semi joins DuckDB can push into the scans (an OR of the two would not be)
    keys = f"(SELECT k FROM temp.main.check_keys WHERE dim = '{dim}')"
    return (f"CREATE OR REPLACE TEMP VIEW files AS SELECT * FROM {real_files} WHERE {dim} IN {keys} "
            f"UNION ALL SELECT * FROM {real_files} WHERE {changed} AND ({dim} IS NULL OR {dim} NOT IN {keys})")


def _digest_many(items: list[tuple[str, bytes, str]]) -> list[dict[str, Any]]:
    out = []
    for path, pb, x in items:
        d = content_digest(pb)
        d["path"], d["xxh3"] = path, x
        out.append(d)
    return out


def compute_content_hashes(
    con: duckdb.DuckDBPyConnection,
    *,
    workers: int | None = None,
    todo: str = "ops/check/content_hash_todo",
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Hash the content of every duplicate-group member not hashed yet (``todo``: the SQL that
    lists them, e.g. only the groups of changed rows); return how many."""
    todo_rows = [(r[0], bytes(r[1]), r[2]) for r in run(con, todo).fetchall()]
    if on_total:
        on_total(len(todo_rows))
    if not todo_rows:
        return 0
    cols = ("path", "xxh3", "content_hash", "pixel_hash", "pixel_decoded", "note", "keys", "values")
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if batch:
            insert_columns(con, "ops/check/upsert_content_hashes", {c: [b[c] for b in batch] for c in cols})
            batch.clear()

    workers = workers or os.cpu_count() or 1
    chunks = [todo_rows[i : i + 16] for i in range(0, len(todo_rows), 16)]
    if workers > 1 and len(todo_rows) > 64:
        from pacscopy.processes import forkserver

        with forkserver("pacscopy.check.checks").Pool(workers) as pool:
            results: Iterable[list[dict[str, Any]]] = pool.imap_unordered(_digest_many, chunks)
            for rows in results:
                batch.extend(rows)
                if on_progress:
                    on_progress(len(rows))
                if len(batch) >= 2000:
                    flush()
    else:
        for chunk in chunks:
            rows = _digest_many(chunk)
            batch.extend(rows)
            if on_progress:
                on_progress(len(rows))
    flush()
    return len(todo_rows)
