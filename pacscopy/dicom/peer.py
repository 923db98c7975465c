"""A DICOM peer: its address (``AE@host:port``), what its statuses mean, how to configure it.

Light on purpose: the sender's worker processes name statuses without importing pynetdicom.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from typing import Any

from pacscopy.errors import InputError

#: C-STORE statuses that mean the target stored the object (PS3.4 B.2.3).
STORED = 0x0000
STORED_WARNINGS = frozenset({0xB000, 0xB006, 0xB007})
_TARGET = re.compile(r"^(?P<ae>[^@]+)@(?P<host>[^:@]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Target:
    """A DICOM peer written ``AE@host:port``."""

    ae: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Target:
        m = _TARGET.match(text.strip())
        if not m or not (0 < int(m.group("port")) < 65536):
            raise InputError(f"target {text!r} is not AE@host:port (for example ORTHANC@127.0.0.1:4242)")
        ae = m.group("ae")
        from pacscopy.validate import ae_title

        ae_title(ae, f"target {text!r}: AE title")
        return cls(ae, m.group("host").strip("[]"), int(m.group("port")))

    def __str__(self) -> str:
        return f"{self.ae}@{self.host}:{self.port}"


#: C-STORE and general DIMSE statuses (PS3.4 B.2.3, PS3.7 C), in pynetdicom's words
#: (``tests/test_send.py`` checks they are the same), kept here so that the
#: sender's processes need not import pynetdicom to name a status.
_STATUS_TEXT: dict[int, tuple[str, str]] = {
    0x0000: ("Success", ""), 0x0105: ("Failure", "No Such Attribute"), 0x0106: ("Failure", "Invalid Attribute Value"),
    0x0107: ("Warning", "Attribute List Error"), 0x0110: ("Failure", "Processing Failure"),
    0x0111: ("Failure", "Duplication SOP Instance"), 0x0112: ("Failure", "No Such SOP Instance"),
    0x0113: ("Failure", "No Such Event Type"), 0x0114: ("Failure", "No Such Argument"),
    0x0115: ("Failure", "Invalid Argument Value"), 0x0116: ("Warning", "Attribute Value Out of Range"),
    0x0117: ("Failure", "Invalid Object Instance"), 0x0118: ("Failure", "No Such SOP Class"),
    0x0119: ("Failure", "Class-Instance Conflict"), 0x0120: ("Failure", "Missing Attribute"),
    0x0121: ("Failure", "Missing Attribute Value"), 0x0122: ("Failure", "Refused: SOP Class Not Supported"),
    0x0123: ("Failure", "No Such Action"), 0x0124: ("Failure", "Refused: Not Authorised"),
    0x0210: ("Failure", "Duplicate Invocation"), 0x0211: ("Failure", "Unrecognised Operation"),
    0x0212: ("Failure", "Mistyped Argument"), 0x0213: ("Failure", "Resource Limitation"),
    0xB000: ("Warning", "Coercion of Data Elements"), 0xB006: ("Warning", "Element Discarded"),
    0xB007: ("Warning", "Data Set Does Not Match SOP Class"), 0xFE00: ("Cancel", ""),
}
_STATUS_RANGES = (
    (0xA700, 0xA7FF, ("Failure", "Refused: Out of Resources")),
    (0xA900, 0xA9FF, ("Failure", "Data Set Does Not Match SOP Class")),
    (0xC000, 0xCFFF, ("Failure", "Cannot Understand")),
)
_FAILURE_CODES = frozenset(k for k, v in _STATUS_TEXT.items() if v[0] == "Failure")


def _status_category(code: int) -> str:
    """The category of an unlisted status (PS3.7 C), as pynetdicom's ``code_to_category`` names it."""
    if code == 0x0000:
        return "Success"
    if code in (0xFF00, 0xFF01):
        return "Pending"
    if code == 0xFE00:
        return "Cancel"
    if code in _FAILURE_CODES or 0xA000 <= code <= 0xAFFF or 0xC000 <= code <= 0xCFFF:
        return "Failure"
    if code in (0x0107, 0x0116, 0x0001) or 0xB000 <= code <= 0xBFFF:
        return "Warning"
    return "Unknown"


def status_meaning(status: int | None) -> str:
    """What a C-STORE status means, or what its absence means."""
    if status is None:
        return "no response"
    text = _STATUS_TEXT.get(status)
    if text is None:
        text = next((t for lo, hi, t in _STATUS_RANGES if lo <= status <= hi), None)
    if text is not None:
        return f"{text[0]}: {text[1]}"
    return _status_category(status)


def nodelay_handlers() -> list[Any]:
    """Event handlers that switch Nagle's algorithm off on every association's socket.

    Without TCP_NODELAY each small PDU can wait ~40 ms for the peer's delayed ACK.
    """
    from pynetdicom import evt

    def on_open(event: Any) -> None:
        try:
            sock = event.assoc.dul.socket.socket
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (AttributeError, OSError):
            pass

    return [(evt.EVT_CONN_OPEN, on_open)]


def rejection_advice(reason: tuple[int, int] | None, calling_ae: str, target: Target) -> str:
    """What to configure after a permanent A-ASSOCIATE-RJ with this (source, reason)."""
    if reason == (1, 3):
        return (f"the target does not know the calling AE title {calling_ae!r}: add {calling_ae} (this host) to "
                f"the target's known AEs (Orthanc: DicomModalities), or pass the AE title it knows with "
                f"--calling-ae")
    if reason == (1, 7):
        return (f"the target's AE title is not {target.ae!r}: use the AE title the target is configured with "
                f"in --target AE@{target.host}:{target.port}")
    if reason == (1, 2):
        return "the target does not speak the DICOM application context: is this a DICOM port?"
    if reason == (2, 2):
        return "the target does not support the DICOM upper layer protocol version 1"
    return (f"check that the target knows the calling AE title {calling_ae!r} (this host) and that its own AE "
            f"title is {target.ae!r}")


_AE_PATCHED = False


def accept_nul_padded_ae_titles() -> None:
    """Let pacscopy's listeners accept AE titles padded with NULs instead of spaces.

    PS3.8 pads AE titles with spaces; some implementations (pynetdicom2, used by
    tiny-pacs) pad with NULs, and pynetdicom refuses such an A-ASSOCIATE-RQ as
    invalid, aborting the association. Being liberal in what we accept, the
    trailing NULs are stripped before pynetdicom validates the title. Idempotent.
    """
    global _AE_PATCHED
    if _AE_PATCHED:
        return
    from pynetdicom.pdu import A_ASSOCIATE_RQ

    for name in ("called_ae_title", "calling_ae_title"):
        prop = getattr(A_ASSOCIATE_RQ, name)

        def setter(self: Any, value: Any, _set: Any = prop.fset) -> None:
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).rstrip(b"\x00 ").lstrip(b"\x00") or bytes(value)
            _set(self, value)

        setattr(A_ASSOCIATE_RQ, name, prop.setter(setter))
    _AE_PATCHED = True
