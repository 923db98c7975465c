"""Turn result rows into text: aligned tables, CSV, JSON. Pure functions, no printing."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from collections.abc import Sequence
from typing import Any


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


_CONTROL = {i: f"\\x{i:02x}" for i in (*range(32), 127)} | {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}


def _table_cell(v: Any) -> str:
    """A cell on one line: newlines, tabs and other control characters escaped (a path may hold them)."""
    return _cell(v).translate(_CONTROL)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], max_width: int = 60) -> str:
    """A plain aligned text table (no box drawing: it must survive any terminal and log)."""
    cells = [[_table_cell(v) for v in r] for r in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in r] for r in cells]
    widths = [len(c) for c in columns]
    for r in cells:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def to_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(v) for v in r])
    return buf.getvalue().rstrip("\n")


def _json_default(v: Any, whole: bool = False) -> Any:
    """JSON for what DuckDB returns: times in ISO 8601, decimals as numbers (``whole``: 3, not 3.0)."""
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return int(v) if whole and v == v.to_integral_value() else float(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    return str(v)


def _whole_default(v: Any) -> Any:
    return _json_default(v, whole=True)


def to_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    return json.dumps([dict(zip(columns, r)) for r in rows], default=_json_default, indent=1, ensure_ascii=False)


def document_json(data: Any, *, compact: bool = False) -> str:
    """A report (nested dicts and lists) as JSON; ``compact``: no indentation, no spaces."""
    return json.dumps(data, default=_whole_default, ensure_ascii=False,
                      **({"separators": (",", ":")} if compact else {"indent": 1}))  # type: ignore[arg-type]


def render(fmt: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if fmt == "csv":
        return to_csv(columns, rows)
    if fmt == "json":
        return to_json(columns, rows)
    return table(columns, rows)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
