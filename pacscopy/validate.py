"""Validation of user-given values, in one place for every command.

AE titles, ports, host names, timeouts, PatientIDs and the text files users
hand to pacscopy (CSV, SQL) are checked here before anything is opened or
sent, so that a bad value ends as one line naming it (:class:`InputError`),
never as a traceback from deep inside a worker or pynetdicom.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pacscopy.dicom.peer import Target
from pacscopy.errors import InputError

#: AE titles: PS3.5 6.2 (VR AE): at most 16 characters of the default
#: character repertoire, backslash and control characters excluded; leading
#: and trailing spaces are not significant, so all spaces is empty.
AE_MAX = 16
#: PatientID (VR LO): at most 64 characters, no backslash, no control characters.
LO_MAX = 64


def _bad_chars(value: str) -> str | None:
    for c in value:
        if c == "\\":
            return "a backslash (DICOM's value separator)"
        if ord(c) < 32 or ord(c) == 127:
            return f"a control character ({ord(c):#04x})"
    return None


def ae_title(value: str, what: str = "AE title") -> str:
    """``value`` if it is a valid AE title, else :class:`InputError` naming ``what``."""
    if not value.strip():
        raise InputError(f"{what} {value!r} is empty: give 1-16 characters, e.g. PACSCOPY")
    bad = _bad_chars(value)
    if bad:
        raise InputError(f"{what} {value!r} contains {bad}")
    if not value.isascii():
        raise InputError(f"{what} {value!r} has characters outside the DICOM default repertoire (ASCII)")
    if len(value) > AE_MAX:
        raise InputError(f"{what} {value!r} is {len(value)} characters long: at most {AE_MAX}")
    return value


def port(value: int, what: str = "port", *, allow_zero: bool = False) -> int:
    """A TCP port 1-65535 (0 too with ``allow_zero``: any free port / none)."""
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise InputError(f"{what} {value} is not a port ({low}-65535)")
    return value


def timeout(value: float, what: str = "--timeout") -> float:
    """A positive, finite number of seconds."""
    if not (value > 0 and math.isfinite(value)):
        raise InputError(f"{what} {value} must be a positive number of seconds")
    return value


def resolvable(host: str, what: str = "host") -> str:
    """``host`` if it resolves to an address, else one line saying it does not."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        why = e.strerror if isinstance(e, socket.gaierror) and e.strerror else str(e)
        raise InputError(f"{what} {host!r} does not resolve to an address ({why})") from None
    return host


def patient_id(value: str, what: str = "PatientID") -> str:
    """A valid PatientID (VR LO): 1-64 characters, no backslash or control characters."""
    if not value:
        raise InputError(f"{what} is empty")
    bad = _bad_chars(value)
    if bad:
        raise InputError(f"{what} {value!r} contains {bad}")
    if len(value) > LO_MAX:
        raise InputError(f"{what} {value[:20]!r}... is {len(value)} characters long: at most {LO_MAX}")
    return value


def read_text(path: Path | str, what: str = "file") -> str:
    """The text of a UTF-8 file (a BOM is dropped); one line naming the file otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{what} {path} is not UTF-8 text (line {line}, byte offset {e.start}): "
                         f"save it as UTF-8") from None


def target(text: str, resolve: bool = True) -> Target:
    """A ``--target`` AE@host:port parsed (AE title and port validated) and, for a network command, its host
    resolved."""
    t = Target.parse(text)
    if resolve:
        resolvable(t.host, f"target {text!r}: host")
    return t


def option(check: Callable[..., Any], what: str, **kw: Any) -> Callable[[Any], Any]:
    """A typer callback running ``check(value, what, **kw)``: a bad value ends as one line (InputError)
    before the command runs."""

    def callback(value: Any) -> Any:
        return value if value is None else check(value, what, **kw)

    return callback
