"""Checks: find in SQL what would go wrong on the target, before anything is sent.

Each check is one SELECT in ``sql/checks/<check_id>.sql`` returning the fixed
columns ``severity, path, sop_instance_uid, group_key, detail, recoverable``;
``run_checks`` rebuilds the ``findings`` rows of the checks it runs and then
the automatic plan, in one transaction, so a killed run leaves the previous
state intact. The one thing SQL cannot do, comparing the decoded content of
two differently encoded copies of an instance (:mod:`pacscopy.digest`), is
done in worker processes, and only for the members of duplicate groups.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import duckdb

from pacscopy.digest import content_digest
from pacscopy.errors import InputError
from pacscopy.index import fetch, insert_columns, load_sql, run, run_script, sql_dir, transaction

log = logging.getLogger(__name__)

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
    on_hash_total: Callable[[int], None] | None = None,
    on_hash_progress: Callable[[int], None] | None = None,
) -> CheckResult:
    """Run the named checks (default: all), then rebuild the plan."""
    available = check_names()
    wanted = list(names) if names else available
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise InputError(f"unknown check {unknown[0]!r}; the checks are: {', '.join(available)}")
    res = CheckResult(wanted)
    refresh_sop_classes(con)
    if {"duplicate_reencoded", "duplicate_conflict"} & set(wanted) or not names:
        res.hashed = compute_content_hashes(con, on_total=on_hash_total, on_progress=on_hash_progress)
    with transaction(con):
        for name in wanted:
            sql = load_sql(f"checks/{name}").strip().rstrip(";")
            con.execute(load_sql("ops/check/delete_findings"), {"check_id": name})
            # The check file is package SQL, not user input: it is wrapped, never formatted with values.
            con.execute(
                "INSERT INTO findings (check_id, severity, path, sop_instance_uid, group_key, detail, recoverable) "
                f"SELECT $check_id, severity, path, sop_instance_uid, group_key, detail, recoverable FROM ({sql})",
                {"check_id": name},
            )
        from pacscopy.send.transcode import plan_params

        run_script(con, "ops/check/build_plan", plan_params())
    res.findings = {r[0]: r[1] for r in run(con, "ops/check/findings_per_check").fetchall()}
    res.summary = fetch(con, "ops/check/findings_summary", FindingCount)
    res.plan = plan_summary(con)
    res.dispositions = {p.disposition: p.instances for p in res.plan}
    return res


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
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Hash the content of every duplicate-group member not hashed yet; return how many."""
    todo = [(r[0], bytes(r[1]), r[2]) for r in run(con, "ops/check/content_hash_todo").fetchall()]
    if on_total:
        on_total(len(todo))
    if not todo:
        return 0
    cols = ("path", "xxh3", "content_hash", "pixel_hash", "pixel_decoded", "note", "keys", "values")
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if batch:
            insert_columns(con, "ops/check/upsert_content_hashes", {c: [b[c] for b in batch] for c in cols})
            batch.clear()

    workers = workers or os.cpu_count() or 1
    chunks = [todo[i : i + 16] for i in range(0, len(todo), 16)]
    if workers > 1 and len(todo) > 64:
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
    return len(todo)
