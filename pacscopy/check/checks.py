"""Checks: find in SQL what would go wrong on the target, before anything is sent.

Each check is one SELECT in ``sql/checks/<check_id>.sql`` returning the fixed
columns ``severity, path, sop_instance_uid, group_key, detail, recoverable``;
``run_checks`` rebuilds the ``findings`` rows of the checks it runs and then
the automatic plan, in one transaction, so a killed run leaves the previous
state intact. The one thing SQL cannot do, comparing the decoded content of
two differently encoded copies of an instance, is done here in Python, and
only for the members of duplicate groups.
"""

from __future__ import annotations

import csv
import getpass
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import xxhash

from pacscopy.errors import InputError
from pacscopy.index import fetch, insert_columns, load_sql, rollback, run, run_script, sql_dir

log = logging.getLogger(__name__)

ACTIONS = ("send", "skip", "hold")


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
    con.execute("BEGIN TRANSACTION")
    try:
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
        con.execute("COMMIT")
    except Exception:
        rollback(con)
        raise
    res.findings = {r[0]: r[1] for r in run(con, "ops/check/findings_per_check").fetchall()}
    res.summary = fetch(con, "ops/check/findings_summary", FindingCount)
    res.plan = plan_summary(con)
    res.dispositions = {p.disposition: p.instances for p in res.plan}
    return res


# -- canonical content hash ---------------------------------------------------

def _norm(value: Any) -> Any:
    """A value in a form that does not depend on its encoding."""
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence

    if isinstance(value, Sequence):
        return tuple(_dataset_digest(item)[0] for item in value)
    if isinstance(value, (MultiValue, list, tuple)):
        return tuple(_norm(v) for v in value)
    if isinstance(value, bytes):
        stripped = value.rstrip(b"\x00 ")
        if stripped.isascii() and all(32 <= c < 127 or c in (9, 10, 13) for c in stripped):
            return stripped.decode("ascii").strip()  # a private text element read as UN
        return value
    if isinstance(value, float):
        return repr(value)
    if value is None:
        return ""
    text = str(value)
    return text.rstrip("\x00 ").strip()


def _dataset_digest(ds: Any) -> tuple[str, dict[str, str]]:
    elements: dict[str, str] = {}
    # how the values were read (None for datasets built in memory: native little endian)
    big_endian = getattr(ds, "original_encoding", (None, None))[1] is False
    for elem in ds:
        # Not content: the file meta, group lengths (they change with the VR encoding),
        # trailing padding, and the pixel data (compared separately, decoded).
        if elem.tag.group == 0x0002 or elem.tag.element == 0x0000 or elem.tag in (0x7FE00010, 0xFFFCFFFC):
            continue
        try:
            v = elem.value
        except Exception as e:  # a value pydicom cannot convert still has an identity
            v = f"<unreadable: {e}>"
        key = elem.keyword or f"({elem.tag.group:04X},{elem.tag.element:04X})"
        if isinstance(v, bytes) and elem.VR in ("OW", "OF", "OD", "OL") and big_endian:
            import numpy as np

            width = {"OW": 2, "OF": 4, "OD": 8, "OL": 4}[elem.VR]
            v = np.frombuffer(v, dtype=f">u{width}").astype(f"<u{width}").tobytes()
        elements[key] = xxhash.xxh3_64_hexdigest(repr(_norm(v)).encode("utf-8", "surrogatepass"))
    digest = xxhash.xxh3_128_hexdigest(repr(sorted(elements.items())).encode())
    return digest, elements


def content_digest(path: bytes) -> dict[str, Any]:
    """Canonical hashes of one file: every element in tag order (group 0002 excluded), pixels decoded if possible."""
    import warnings

    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(os.fsdecode(path), force=True)
            return digest_dataset(ds)
    except Exception as e:
        return {"content_hash": None, "pixel_hash": None, "pixel_decoded": False, "keys": [], "values": [],
                "note": f"cannot read for comparison: {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"}


def digest_dataset(ds: Any) -> dict[str, Any]:
    """Canonical hashes of a dataset, independent of its encoding.

    ``keys``/``values`` are the attribute keywords and the hashes of their
    normalised values (``PixelData``: of the decoded pixels where pydicom has
    a decoder, else of the encoded bytes, and ``note`` says so).
    """
    import warnings

    out: dict[str, Any] = {"content_hash": None, "pixel_hash": None, "pixel_decoded": False,
                           "note": None, "keys": [], "values": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        digest, elements = _dataset_digest(ds)
        if "PixelData" in ds:
            meta = getattr(ds, "file_meta", None)
            ts = meta.get("TransferSyntaxUID") if meta is not None else None
            if ts is None:
                # a raw dataset without meta: the encoding pydicom read it in is its syntax
                from pydicom.dataset import FileMetaDataset
                from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

                implicit, little = ds.original_encoding
                ts = ImplicitVRLittleEndian if implicit else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
                if meta is None:
                    ds.file_meta = FileMetaDataset()
                ds.file_meta.TransferSyntaxUID = ts
            try:
                arr = ds.pixel_array
                out["pixel_hash"] = xxhash.xxh3_128_hexdigest(
                    f"{arr.shape}|{arr.dtype.str.lstrip('<>=|')}".encode() + arr.astype(arr.dtype.newbyteorder("<")).tobytes()
                )
                out["pixel_decoded"] = True
            except Exception as e:
                out["pixel_hash"] = xxhash.xxh3_128_hexdigest(ds.PixelData)
                name = getattr(ts, "name", ts) or "unknown syntax"
                out["note"] = f"pixel data of {name} not decoded ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
            elements["PixelData"] = out["pixel_hash"]
            digest = xxhash.xxh3_128_hexdigest(repr(sorted(elements.items())).encode())
    out["content_hash"] = digest
    out["keys"], out["values"] = list(elements), list(elements.values())
    return out


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
        import multiprocessing as mp

        ctx = mp.get_context("forkserver")
        with ctx.Pool(workers) as pool:
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


# -- decisions ------------------------------------------------------------------

@dataclass
class Decision:
    sop_instance_uid: str
    action: str
    note: str
    path: str | None = None
    line: int | None = None  # the CSV line it came from


def record_decisions(con: duckdb.DuckDBPyConnection, decisions: list[Decision], source: str | None = None) -> int:
    """Validate every decision against the index, then store them all (or none).

    Set-wise: the decisions are staged in one statement and checked in SQL
    (``ops/decide_problems``), so a CSV of thousands of lines costs a few queries,
    not a few per line. ``source`` (the CSV's name) prefixes error messages.
    """
    for i, d in enumerate(decisions):
        _validate_fields(d, _where(d, source, len(decisions)))
    user = _user()
    con.execute("BEGIN TRANSACTION")
    try:
        run(con, "ops/check/decide_stage", {
            "line": [d.line if d.line is not None else i + 1 for i, d in enumerate(decisions)],
            "sop": [d.sop_instance_uid for d in decisions], "action": [d.action for d in decisions],
            "note": [d.note for d in decisions], "path": [d.path for d in decisions]})
        problem = run(con, "ops/check/decide_problems").fetchone()
        if problem is not None:
            _refuse(problem, source, len(decisions))
        run(con, "ops/check/upsert_decision", {"by": user})
        con.execute("DROP TABLE decide_stage")
        con.execute("COMMIT")
    except Exception:
        rollback(con)
        raise
    return len(decisions)


def _where(d: Decision, source: str | None, n: int) -> str:
    if source is not None and d.line is not None:
        return f"{source}, line {d.line}"
    return "decision"


def _refuse(problem: tuple[Any, ...], source: str | None, n: int) -> None:
    kind, line, other, sop, other_action, action, path = problem
    where = f"{source}, line {line}" if source is not None else "decision"
    if kind == "twice":
        how = (f"with different actions ({other_action} on line {other}, {action} on line {line})"
               if other_action != action else f"twice (lines {other} and {line})")
        raise InputError(f"{where}: SOPInstanceUID {sop} is decided {how}: give one decision per instance")
    if kind == "unknown":
        raise InputError(f"{where}: SOPInstanceUID {sop} is not in the index")
    if kind == "manifest_only_send":  # a broken link: there is nothing to send, it can only be skipped or held
        raise InputError(f"{where}: SOPInstanceUID {sop} is known only to the old PACS's "
                         "database (no file holds it): it can be skipped or held, not sent")
    if kind == "path_without_send":
        raise InputError(f"{where}: --path only makes sense with --action send")
    if kind == "not_a_copy":
        raise InputError(f"{where}: {path} is not a file of SOPInstanceUID {sop}")
    raise InputError(f"{where}: {path} has vanished from the source (status missing)")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def _validate_fields(d: Decision, where: str) -> None:
    if d.action not in ACTIONS:
        raise InputError(f"{where}: action {d.action!r} is not one of {', '.join(ACTIONS)}")
    if not d.sop_instance_uid:
        raise InputError(f"{where}: no SOPInstanceUID given")
    if not d.note or not d.note.strip():
        raise InputError(f"{where}: a note is required (say why, for the audit trail)")


def read_decisions_csv(path: Path) -> list[Decision]:
    """Read ``sop_instance_uid,action,note[,path]`` rows; errors name the line."""
    import io

    from pacscopy import validate

    text = validate.read_text(path, "decisions file")
    out = []
    with io.StringIO(text, newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise InputError(f"{path}: the file is empty") from None
        except csv.Error as e:
            raise InputError(f"{path}, line 1: {e}") from None
        required = {"sop_instance_uid", "action", "note"}
        if not required <= set(header):
            raise InputError(
                f"{path}, line 1: header must name sop_instance_uid, action, note (and optionally path); got {','.join(header)}"
            )
        try:
            for row in reader:
                line = reader.line_num
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise InputError(f"{path}, line {line}: expected {len(header)} fields, found {len(row)}")
                rec = dict(zip(header, (c.strip() for c in row)))
                d = Decision(rec["sop_instance_uid"], rec["action"].lower(), rec["note"], rec.get("path") or None,
                             line)
                if d.action not in ACTIONS:
                    raise InputError(f"{path}, line {line}: action {rec['action']!r} is not one of {', '.join(ACTIONS)}")
                if not d.sop_instance_uid or not d.note:
                    raise InputError(f"{path}, line {line}: sop_instance_uid and note must not be empty")
                out.append(d)
        except csv.Error as e:
            raise InputError(f"{path}, line {reader.line_num}: {e}") from None
    if not out:
        raise InputError(f"{path}: no decisions in the file")
    return out
