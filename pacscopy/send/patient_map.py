"""The PatientID map: old IDs rewritten to new ones at send time (``pacscopy map``)."""

from __future__ import annotations

import duckdb

from pacscopy.errors import InputError
from pacscopy.index import run, transaction
from pacscopy.send.status_counts import recount_kept


def load_patient_map(con: duckdb.DuckDBPyConnection, path: str, *, merge: bool = False) -> int:
    """Load ``old_id,new_id[,issuer]`` rows into ``patient_map``, all or nothing; errors name the line.

    Every ID must be a valid PatientID (VR LO). Refused, because a wrong map silently
    relabels patients: an old ID given twice; chains, cycles and swaps (an ID mapped onto
    an ID that is itself mapped, in this file or an earlier load); and, unless ``merge``,
    a mapping that merges two patients (the new ID already belongs to another patient in
    the index, or two old IDs map onto one new ID). Merges loaded with ``merge`` are
    recorded in ``patient_map.is_merge``. Validation is set-wise, in SQL.
    """
    import csv
    import io

    from pacscopy import validate

    text = validate.read_text(path, "mapping file")
    lines: list[int] = []
    olds: list[str] = []
    news: list[str] = []
    issuers: list[str | None] = []
    seen: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            line = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if line == 1 and row[0].strip().lower() in ("old_id", "old_patient_id", "old"):
                continue
            if len(row) not in (2, 3):
                raise InputError(f"{path}, line {line}: expected old_id,new_id[,issuer], found {len(row)} fields")
            old, new = row[0].strip(), row[1].strip()
            issuer = (row[2].strip() or None) if len(row) == 3 else None
            try:
                validate.patient_id(old, "old PatientID")
                validate.patient_id(new, "new PatientID")
                if issuer is not None:
                    validate.patient_id(issuer, "issuer")
            except InputError as e:
                raise InputError(f"{path}, line {line}: {e}") from None
            if old in seen:
                raise InputError(f"{path}, line {line}: PatientID {old!r} is mapped twice "
                                 f"(lines {seen[old]} and {line})")
            seen[old] = line
            lines.append(line)
            olds.append(old)
            news.append(new)
            issuers.append(issuer)
    except csv.Error as e:
        raise InputError(f"{path}, line {reader.line_num}: {e}") from None
    if not olds:
        raise InputError(f"{path}: no mappings in the file")
    with transaction(con):
        run(con, "ops/send/map_stage", {"line": lines, "old": olds, "new": news, "issuer": issuers})
        merge_lines: list[int] = []
        for kind, line, other, old, new, other_old, other_new, files in run(con, "ops/send/map_problems").fetchall():
            where = f"line {other}" if other is not None else "an earlier map load"
            if kind == "chain":
                raise InputError(
                    f"{path}, line {line}: {old!r} -> {new!r} and {other_old!r} -> {other_new!r} ({where}) "
                    "chain, swap or cycle PatientIDs: map each old ID directly to its final ID")
            if merge:
                merge_lines.append(line)
                continue
            if kind == "merge_index":
                raise InputError(
                    f"{path}, line {line}: new PatientID {new!r} already belongs to another patient in the index "
                    f"({files} files): mapping {old!r} onto it merges two patients; if that is intended, "
                    "load the file with --merge")
            raise InputError(
                f"{path}, line {line}: {old!r} and {other_old!r} ({where}) are both mapped onto {new!r}: "
                "that merges two patients; if that is intended, load the file with --merge")
        run(con, "ops/send/insert_patient_map", {"source": str(path), "merge_lines": sorted(set(merge_lines))})
        con.execute("DROP TABLE map_stage")
        recount_kept(con)  # a map changes what an update is: status's kept figures counted again
    return len(olds)
