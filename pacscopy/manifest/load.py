"""The old PACS's own database export (the "manifest"): load it, validate it, set its policy.

The export is read by DuckDB's own readers (``read_csv``, ``read_parquet``,
``read_json``) straight into the ``manifest`` table in one transaction, renamed
onto pacscopy's columns (``--columns``) and normalised on the way in, then
validated in SQL (``sql/ops/manifest/``) before the transaction commits: a bad
export is named in one line, rolled back, and the earlier manifest is kept. Checks (``sql/checks/manifest_*``),
the plan, the send queue and reconcile read the table.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from pacscopy.errors import InputError, ManifestError
from pacscopy.index import run, run_script, transaction

log = logging.getLogger(__name__)

#: pacscopy's manifest columns, in order; only ``sop_instance_uid`` is required in an export.
COLUMNS = ("sop_instance_uid", "study_instance_uid", "series_instance_uid", "sop_class_uid", "patient_id",
           "issuer_of_patient_id", "patient_name", "patient_birth_date", "patient_sex", "accession_number",
           "study_date", "modality", "location", "state")
_DATES = ("patient_birth_date", "study_date")
FORMATS = ("csv", "parquet", "json")
_EXTENSIONS = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
               ".json": "json", ".jsonl": "json", ".ndjson": "json"}

#: Plan rules the manifest adds, their allowed actions and the default (the first).
POLICY: dict[str, tuple[str, ...]] = {
    "deleted": ("skip", "hold", "send"),         # the database marks it deleted, a file still holds it
    "orphan": ("hold", "send", "skip"),          # a file holds an instance the database does not know
    "demographics": ("rewrite", "send", "hold"),  # patient/study attributes differ: rewrite = the database's values
    "uid_mismatch": ("hold", "send", "skip"),    # study, series or SOP class UID differ
}


@dataclass
class LoadResult:
    load_id: int
    rows: int
    source: str
    format: str


def guess_format(path: Path) -> str:
    """The export's format from its file name extension."""
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ManifestError(f"{path}: cannot tell the format from the extension; give --format {'|'.join(FORMATS)}")
    return fmt


def parse_mapping(spec: str | None) -> dict[str, str]:
    """``--columns``: a mapping file (``ours=theirs`` per line, ``#`` comments) or ``ours=theirs,...`` pairs."""
    if not spec:
        return {}
    where = "--columns"
    if os.path.isfile(spec):
        where = spec
        try:
            lines = Path(spec).read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ManifestError(f"cannot read the column mapping {spec}: {e}") from None
        items = [(i + 1, ln.split("#", 1)[0].strip()) for i, ln in enumerate(lines)]
    else:
        items = [(0, p.strip()) for p in spec.split(",")]
    out: dict[str, str] = {}
    for line, item in items:
        if not item:
            continue
        at = f"{where}, line {line}" if line else where
        ours, eq, theirs = item.partition("=")
        ours, theirs = ours.strip().lower(), theirs.strip()
        if not eq or not ours or not theirs:
            raise ManifestError(f"{at}: {item!r} is not ours=theirs (e.g. sop_instance_uid=SOPInstUID)")
        if ours not in COLUMNS:
            raise ManifestError(f"{at}: {ours!r} is not a manifest column (they are: {', '.join(COLUMNS)})")
        if ours in out:
            raise ManifestError(f"{at}: {ours} is mapped twice")
        out[ours] = theirs
    return out


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except OSError as e:
        raise ManifestError(f"cannot read {path}: {e.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f"{path}, line 1: cannot read the header line ({e})") from None
    if not header or not any(h.strip() for h in header):
        raise ManifestError(f"{path}: the file is empty (a header line is needed)")
    return [h.strip() for h in header]


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _reader_error(path: Path, fmt: str, e: duckdb.Error) -> ManifestError:
    """DuckDB's error for an unreadable export as one line naming the line, without the row's values."""
    text = str(e)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "CSV Error on Line:" in ln:
            where = ln.split("CSV Error on Line:", 1)[1].strip()
            # the line after "Original Line: ..." (which holds patient data) says what is wrong
            what = next((x for x in lines[i + 1:] if not x.startswith("Original Line")), "malformed line")
            if what.startswith("Possible fixes"):
                what = "malformed line"
            m = re.match(r"Expected Number of Columns: (\d+) Found: (\d+)", what)
            if m:
                what = f"expected {m.group(1)} fields, found {m.group(2)}"
            return ManifestError(f"{path}, line {where}: {what.rstrip('.')} (a truncated or malformed CSV)")
    return ManifestError(f"cannot read {path} as {fmt}: {_first_line(e)}")


def _reader(con: duckdb.DuckDBPyConnection, path: Path, fmt: str) -> tuple[str, dict[str, Any], list[str]]:
    """The DuckDB reader call for the export, its parameters, and the export's column names."""
    p: dict[str, Any] = {"path": str(path)}
    if fmt == "csv":
        header = _csv_header(path)
        if len(set(header)) != len(header):
            dup = next(h for h in header if header.count(h) > 1)
            raise ManifestError(f"{path}, line 1: column {dup!r} appears twice in the header")
        # The header is read here and the columns given: DuckDB's sniffer would otherwise guess
        # the dialect of a damaged file (one column, rows silently dropped). All VARCHAR:
        # PatientIDs like 00123 must stay text.
        p["cols"] = {h: "VARCHAR" for h in header}
        return ("read_csv($path, columns = $cols, auto_detect = false, header = true, delim = ',', quote = '\"', "
                "escape = '\"', strict_mode = true, null_padding = false)", p, header)
    reader = "read_parquet($path)" if fmt == "parquet" else "read_json($path)"
    try:
        have = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}", p).fetchall()]
    except duckdb.Error as e:
        raise _reader_error(path, fmt, e) from None
    return reader, p, have


def _resolve(path: Path, have: list[str], mapping: dict[str, str]) -> dict[str, str | None]:
    """Our column -> the export's column (None: absent, NULL for every row)."""
    lower: dict[str, list[str]] = {}
    for h in have:
        lower.setdefault(h.lower(), []).append(h)

    def find(name: str) -> str | None:
        if name in have:
            return name
        cands = lower.get(name.lower(), [])
        return cands[0] if len(cands) == 1 else None

    out: dict[str, str | None] = {}
    shown = ", ".join(have[:20]) + (", ..." if len(have) > 20 else "")
    for ours in COLUMNS:
        if ours in mapping:
            found = find(mapping[ours])
            if found is None:
                raise ManifestError(f"--columns maps {ours} to {mapping[ours]!r}, a column {path} does not have "
                                    f"(its columns: {shown})")
            out[ours] = found
        else:
            out[ours] = find(ours)
    if out["sop_instance_uid"] is None:
        raise ManifestError(f"{path} has no sop_instance_uid column (its columns: {shown}); "
                            "name it with --columns sop_instance_uid=THEIR_NAME")
    return out


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _describe_problem(path: Path, fmt: str, row: tuple[Any, ...]) -> str:
    problem, source_row, col, value, n, rows = row
    unit = "line" if fmt == "csv" else "row"
    at = f"{path}, {unit} {int(source_row) + 1 if fmt == 'csv' else source_row}"
    if problem == "missing_uid":
        more = f" ({n} rows without one)" if n != 1 else ""
        return f"{at}: sop_instance_uid is empty{more}"
    if problem == "duplicate_uid":
        where = f"{unit}s " + ", ".join(str(int(r) + 1 if fmt == "csv" else r) for r in rows or [])
        return (f"{path}: {n} SOPInstanceUID{'s appear' if n != 1 else ' appears'} more than once, e.g. {value} "
                f"on {where}; the export must list each instance once")
    if problem == "bad_date":
        more = f" ({n} invalid dates in all)" if n != 1 else ""
        return f"{at}: column {col}: {value!r} is not a date (YYYYMMDD or YYYY-MM-DD){more}"
    more = f" ({n} rows in all)" if n != 1 else ""
    return f"{at}: column state: {value!r} is not online, offline or deleted{more}"


def load_manifest(con: duckdb.DuckDBPyConnection, path: Path, fmt: str | None = None,
                  mapping: dict[str, str] | None = None) -> LoadResult:
    """Load, validate and install an export as the manifest (all or nothing)."""
    path = Path(path)
    fmt = fmt or guess_format(path)
    if fmt not in FORMATS:
        raise ManifestError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if not path.exists():
        raise ManifestError(f"{path}: no such file")
    if not path.is_file():
        raise ManifestError(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise ManifestError(f"cannot read {path}: permission denied")
    mapping = mapping or {}
    reader, params, have = _reader(con, path, fmt)
    cols = _resolve(path, have, mapping)
    run_script(con, "ops/manifest/normalise")
    # One read of the file straight into the manifest table, normalised on the way in (the macros
    # of normalise.sql), numbered in file order; validated in the same transaction, which a
    # problem rolls back (the earlier manifest kept). Only the export's column names (quoted
    # identifiers) are formatted into the statement, never a value.
    select = ", ".join(f"{_normalised(ours, theirs)} AS {ours}" for ours, theirs in cols.items())
    source = str(path.resolve())
    spec = ", ".join(f"{k}={v}" for k, v in mapping.items()) or None
    con.execute("SET preserve_insertion_order = true")  # row_number() OVER () is the row's place in the file
    try:
        with transaction(con):
            con.execute("DELETE FROM manifest")
            try:
                con.execute(f"INSERT INTO manifest BY NAME SELECT *, {_KEYS} FROM "
                            f"(SELECT {select}, row_number() OVER () AS source_row FROM {reader})", params)
            except duckdb.Error as e:
                raise _reader_error(path, fmt, e) from None
            try:
                problems = run(con, "ops/manifest/validate").fetchall()
            except duckdb.Error as e:
                raise ManifestError(f"cannot read {path} as {fmt}: {_first_line(e)}") from None
            if problems:
                raise ManifestError(_describe_problem(path, fmt, _as_given(con, reader, params, cols, problems[0])))
            run_script(con, "ops/manifest/replace", {"source": source, "format": fmt, "columns": spec})
    finally:
        con.execute("SET preserve_insertion_order = false")
    r = run(con, "ops/manifest/latest_load").fetchone()
    assert r is not None
    log.info("manifest loaded from %s: %d rows", source, r[4])
    return LoadResult(int(r[0]), int(r[4]), source, fmt)


#: The keys stored with each row for the joins (migration 0019's macros).
_KEYS = ("manifest_sop_key(sop_instance_uid) AS sop_key, "
         "manifest_values_hash(patient_id, issuer_of_patient_id, patient_name, patient_birth_date, patient_sex, "
         "accession_number, study_date, study_instance_uid, series_instance_uid, sop_class_uid) AS cmp_hash")


def _normalised(ours: str, theirs: str | None) -> str:
    """The SQL expression of manifest column ``ours`` from the export's column ``theirs``."""
    if theirs is None:
        return "''" if ours == "sop_instance_uid" else "NULL::VARCHAR"
    v = f"CAST({_quote(theirs)} AS VARCHAR)"
    if ours in _DATES:
        return f"manifest_date({v})"
    if ours == "sop_instance_uid":  # '' (never a normalised value) stands for empty until validate.sql names it
        return f"coalesce(manifest_value({v}), '')"
    if ours == "patient_sex":
        return f"upper(manifest_value({v}))"
    if ours == "state":
        return f"lower(manifest_value({v}))"
    return f"manifest_value({v})"


def _as_given(con: duckdb.DuckDBPyConnection, reader: str, params: dict[str, Any],
              cols: dict[str, str | None], problem: tuple[Any, ...]) -> tuple[Any, ...]:
    """A state problem as the export wrote the value (the table holds it in lower case)."""
    if problem[0] != "bad_state" or not cols["state"]:
        return problem
    # an error path only: read the file again to the problem's row
    r = con.execute(f"SELECT v FROM (SELECT row_number() OVER () AS r, manifest_value(CAST({_quote(cols['state'])} "
                    f"AS VARCHAR)) AS v FROM {reader}) WHERE r = $row", {**params, "row": problem[1]}).fetchone()
    return problem[:3] + ((r[0] if r else problem[3]),) + problem[4:]


def parse_policy(items: list[str]) -> dict[str, str]:
    """``RULE=ACTION`` items of ``check --manifest-policy``, validated."""
    out: dict[str, str] = {}
    for item in items:
        rule, eq, action = item.partition("=")
        rule, action = rule.strip().lower(), action.strip().lower()
        if not eq or rule not in POLICY:
            raise InputError(f"--manifest-policy {item!r}: give RULE=ACTION with RULE one of {', '.join(POLICY)}")
        if action not in POLICY[rule]:
            raise InputError(f"--manifest-policy {item!r}: {rule} can be {', '.join(POLICY[rule])}")
        out[rule] = action
    return out


def set_policy(con: duckdb.DuckDBPyConnection, policy: dict[str, str]) -> None:
    """Record manifest policy rules (they stay until set again)."""
    for rule, action in policy.items():
        run(con, "ops/manifest/set_policy", {"rule": rule, "action": action})


def current_policy(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every rule with its action (recorded, else the default)."""
    rows = dict(run(con, "ops/manifest/policy").fetchall())
    return {rule: rows.get(rule, actions[0]) for rule, actions in POLICY.items()}



def manifest_rewritten(rewritten: str | None) -> set[str]:
    """The attributes a transfer's ``rewritten`` says were written from the manifest (``manifest#N:A+B``)."""
    out: set[str] = set()
    for part in (rewritten or "").split(","):
        if part.startswith("manifest#") and ":" in part:
            out.update(part.split(":", 1)[1].split("+"))
    if "PatientID" in out:
        out.add("OtherPatientIDsSequence")
    return out
