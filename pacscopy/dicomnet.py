"""DICOM networking helpers shared by send, probe, verify and receive.

The one unusual piece is :func:`store`: a C-STORE whose dataset is streamed
from a :class:`Source` in P-DATA sized chunks, hashed on the way, and
withheld (the association aborted before the last fragment) if the bytes are
not the bytes the index recorded. pynetdicom's own chunked path reads the
file itself, so neither the hash of what went over the wire nor raw datasets
without a file meta would be possible with it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any, cast

import xxhash
from pynetdicom import AE, evt
from pynetdicom import dimse as _dimse
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.status import code_to_category

from pacscopy.errors import InputError

#: C-STORE statuses that mean the target stored the object (PS3.4 B.2.3).
STORED = 0x0000
STORED_WARNINGS = frozenset({0xB000, 0xB006, 0xB007})
_TARGET = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>[^:@]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


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
        if not ae.strip() or any(ord(c) < 32 or c == "\\" for c in ae):
            raise InputError(f"target {text!r}: invalid AE title {ae!r}")
        return cls(ae, m.group("host").strip("[]"), int(m.group("port")))

    def __str__(self) -> str:
        return f"{self.ae}@{self.host}:{self.port}"


def status_meaning(status: int | None) -> str:
    """pynetdicom's description of a C-STORE status, or what its absence means."""
    if status is None:
        return "no response"
    from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, GENERAL_STATUS

    for table in (STORAGE_SERVICE_CLASS_STATUS, GENERAL_STATUS):
        if status in table:
            return f"{table[status][0]}: {table[status][1]}"
    if 0xA700 <= status <= 0xA7FF:
        return "Failure: Refused: Out of resources"
    if 0xA900 <= status <= 0xA9FF:
        return "Failure: Data set does not match SOP class"
    if 0xC000 <= status <= 0xCFFF:
        return "Failure: Cannot understand"
    return code_to_category(status)


def nodelay_handlers() -> list[Any]:
    """Event handlers that switch Nagle's algorithm off on every association's socket.

    Without TCP_NODELAY each small PDU can wait ~40 ms for the peer's delayed ACK.
    """

    def on_open(event: Any) -> None:
        try:
            sock = event.assoc.dul.socket.socket
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (AttributeError, OSError):
            pass

    return [(evt.EVT_CONN_OPEN, on_open)]


# -- streaming sources ------------------------------------------------------------

class SourceChanged(Exception):
    """The bytes read for sending are not the bytes the index recorded."""


class Source:
    """Dataset bytes to send, read in chunks and hashed on the way."""

    length: int = 0

    def chunks(self, size: int) -> Iterator[bytes]:
        raise NotImplementedError

    @property
    def digest(self) -> str | None:
        return None


class FileSource(Source):
    """The dataset of a file from ``offset`` to the end, checked against the index's hash.

    The last chunk is only released once the whole stream has been hashed and
    found equal to ``expected``; otherwise :class:`SourceChanged` is raised
    and the receiver never gets a complete object.
    """

    def __init__(self, path: bytes, offset: int, expected: str | None, expected_size: int | None = None) -> None:
        self.path, self.offset, self.expected = path, offset, expected
        self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        st = os.fstat(self._fd)
        if expected_size is not None and st.st_size != expected_size:
            os.close(self._fd)
            raise SourceChanged(f"size is {st.st_size} bytes, the index says {expected_size}")
        self.length = st.st_size - offset
        self._hash = xxhash.xxh3_128()

    def chunks(self, size: int) -> Iterator[bytes]:
        # Read in blocks of ~1 MB and hand out PDU-sized slices: few system calls, no copies.
        block = max(size, ((1 << 20) // size) * size)
        try:
            with os.fdopen(self._fd, "rb", closefd=True) as f:
                f.seek(self.offset)
                buf = f.read(block)
                if not buf:
                    self._verify()
                    yield b""
                    return
                while buf:
                    nxt = f.read(block)
                    self._hash.update(buf)
                    view = memoryview(buf)
                    n = len(buf)
                    for i in range(0, n, size):
                        if not nxt and i + size >= n:
                            self._verify()  # the last fragment goes only if the whole stream matched
                        yield view[i : i + size]  # type: ignore[misc]
                    buf = nxt
        finally:
            self._fd = -1

    def _verify(self) -> None:
        if self.expected is not None and self._hash.hexdigest() != self.expected:
            raise SourceChanged("content differs from the scan (xxh3 of the dataset bytes)")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()


class BytesSource(Source):
    """A dataset rewritten in memory (PatientID mapped, transcoded)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def chunks(self, size: int) -> Iterator[bytes]:
        for i in range(0, len(self.data), size):
            yield self.data[i : i + size]

    @property
    def digest(self) -> str:
        return xxhash.xxh3_128_hexdigest(self.data)


class _StreamedStore(C_STORE):
    """A C-STORE primitive whose dataset comes from a :class:`Source`."""

    source: Source


def _uid_element(tag: int, uid: str) -> bytes:
    value = uid.encode("ascii")
    if len(value) % 2:
        value += b"\x00"
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _store_command(cs: Any) -> bytes:
    """The C-STORE-RQ command set in implicit VR little endian (PS3.7 9.3.1.1), encoded by hand.

    pydicom's general writer costs more per message than the rest of the send.
    """
    body = b"".join([
        _uid_element(0x00000002, str(cs.AffectedSOPClassUID)),
        struct.pack("<HHIH", 0, 0x0100, 2, 0x0001),  # CommandField: C-STORE-RQ
        struct.pack("<HHIH", 0, 0x0110, 2, int(cs.MessageID)),
        struct.pack("<HHIH", 0, 0x0700, 2, int(cs.Priority)),
        struct.pack("<HHIH", 0, 0x0800, 2, 0x0001),  # CommandDataSetType: a dataset follows
        _uid_element(0x00001000, str(cs.AffectedSOPInstanceUID)),
    ])
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


class _StreamedStoreRQ(C_STORE_RQ):
    def primitive_to_message(self, primitive: Any) -> None:
        super().primitive_to_message(primitive)
        self._source: Source = primitive.source
        self._dul: Any = primitive.dul
        self.command_set.CommandDataSetType = 0x0001
        self._set_command_group_length()

    def encode_msg(self, context_id: int, max_pdu_length: int) -> Iterator[Any]:
        """Write the whole message to the socket ourselves; hand pynetdicom nothing.

        pynetdicom passes every P-DATA through its DUL thread's queue, one per
        loop turn, which costs more than the sending itself (a 0.5 MB object
        is 32 PDUs at a 16 KB maximum PDU). The association's reactor is
        paused during a C-STORE (see :func:`store`) and the DUL has nothing
        queued, so nobody else writes to the socket meanwhile; the bytes are
        the same P-DATA-TF PDUs pynetdicom would build (PS3.8 9.3.5).
        """
        from pynetdicom.dsutils import encode

        dul = self._dul
        while not dul.to_provider_queue.empty():  # never overtake anything already queued
            time.sleep(0.0001)
        size = (max_pdu_length - 6) if max_pdu_length else (1 << 24)
        out = bytearray()
        head = struct.Struct(">BBIIBB")  # PDU type, reserved, PDU length, item length, context, control

        def add(payload: bytes | memoryview, control: int) -> None:
            out.extend(head.pack(0x04, 0, len(payload) + 6, len(payload) + 2, context_id, control))
            out.extend(payload)
            if len(out) >= (1 << 18):
                flush()

        def flush() -> None:
            if out:
                dul.socket.send(bytes(out))
                out.clear()

        command = _store_command(self.command_set)
        for i in range(0, len(command), size):
            add(command[i : i + size], 0x03 if i + size >= len(command) else 0x01)
        it = self._source.chunks(size)
        prev = next(it, b"")
        for nxt in it:
            add(prev, 0x00)
            prev = nxt
        add(prev, 0x02)
        flush()
        return
        yield  # a generator that yields no P-DATA


# pynetdicom looks message types up by class name: ours must be called C_STORE_RQ.
_StreamedStoreRQ.__name__ = _StreamedStoreRQ.__qualname__ = "C_STORE_RQ"
_dimse._RQ_TO_MESSAGE[_StreamedStore] = _StreamedStoreRQ  # type: ignore[index]


@dataclass
class StoreResult:
    status: int | None
    error: str | None
    started: dt.datetime
    finished: dt.datetime
    association_lost: bool = False


def _keep_responses(assoc: Any) -> None:
    """Put C-STORE responses that the association's reactor takes back where :func:`store` waits.

    pynetdicom pauses its reactor thread around a request, but the pause has a
    race: the reactor can pass its checkpoint just before it is cleared and then
    take the response off the DIMSE queue itself ("Received unexpected C-STORE
    service message"); the sender then waits for the DIMSE timeout and aborts.
    A response is never a request the reactor could serve, so it goes back.
    """
    if getattr(assoc, "_pacscopy_keeps_responses", False):
        return
    serve = assoc._serve_request

    def serve_request(msg: Any, context_id: int) -> None:
        if isinstance(msg, C_STORE) and msg.MessageIDBeingRespondedTo is not None:
            assoc.dimse.msg_queue.put((context_id, msg))
            return
        serve(msg, context_id)

    assoc._serve_request = serve_request
    assoc._pacscopy_keeps_responses = True


def store(assoc: Any, source: Source, sop_class: str, sop_instance: str, transfer_syntax: str,
          msg_id: int = 1) -> StoreResult:
    """Send one C-STORE with the dataset streamed from ``source``; never raises for peer trouble.

    An empty response (no answer within the DIMSE timeout, an abort) is a
    failure with ``status=None``, never a success.
    """
    started = dt.datetime.now()
    if not assoc.is_established:
        return StoreResult(None, "association is not established", started, dt.datetime.now(), True)
    try:
        ctx = assoc._get_valid_context(sop_class, transfer_syntax, "scu", allow_conversion=False)
    except ValueError:
        return StoreResult(None, f"no accepted presentation context for {sop_class} in {transfer_syntax}",
                           started, dt.datetime.now())
    _keep_responses(assoc)
    req = _StreamedStore()
    req.MessageID = msg_id
    req.AffectedSOPClassUID = sop_class
    req.AffectedSOPInstanceUID = sop_instance
    req.Priority = 2
    req.source = source
    req.dul = assoc.dul
    assoc._reactor_checkpoint.clear()
    try:
        while not assoc._is_paused:
            if not assoc.is_established:
                return StoreResult(None, "association ended before the request", started, dt.datetime.now(), True)
            time.sleep(0.0001)
        try:
            assoc.dimse.send_msg(req, ctx.context_id)
        except SourceChanged:
            assoc.abort()
            raise
        except Exception as e:  # socket errors while sending
            return StoreResult(None, f"send failed: {type(e).__name__}: {e}", started, dt.datetime.now(), True)
        _, rsp = assoc.dimse.get_msg(block=True)
    finally:
        assoc._reactor_checkpoint.set()
    finished = dt.datetime.now()
    if rsp is None:
        assoc._handle_no_response()
        return StoreResult(None, "no response (timeout or association aborted)", started, finished, True)
    status = assoc._check_received_status(rsp)
    if "Status" not in status:
        return StoreResult(None, "invalid response without a status", started, finished, True)
    return StoreResult(int(status.Status), None, started, finished)


def make_ae(calling_ae: str, timeout: float) -> AE:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = min(timeout, 10)
    return ae


def echo(target: Target, calling_ae: str = "PACSCOPY", timeout: float = 10) -> int | None:
    """C-ECHO the target; return the status, or None when there was no association."""
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    ae = make_ae(calling_ae, timeout)
    ae.add_requested_context(Verification)
    assoc = ae.associate(target.host, target.port, ae_title=target.ae, evt_handlers=nodelay_handlers())
    if not assoc.is_established:
        return None
    try:
        st = assoc.send_c_echo()
        return int(st.Status) if "Status" in st else None
    finally:
        assoc.release()


def encode_dataset(ds: Any, transfer_syntax: str) -> bytes:
    """Encode a pydicom dataset (no meta) in ``transfer_syntax``."""
    from pydicom.uid import UID
    from pynetdicom.dsutils import encode

    ts = UID(transfer_syntax)
    out = encode(ds, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
    if out is None:
        raise ValueError(f"cannot encode the dataset in {transfer_syntax}")
    return out


def read_dataset(data: bytes, offset: int, transfer_syntax: str) -> Any:
    """Decode a file's bytes (with or without meta) for rewriting; the caller has already read them."""
    from pydicom import dcmread
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import read_dataset as _rd
    from pydicom.uid import UID

    if offset:
        return dcmread(BytesIO(data), force=True)
    ts = UID(transfer_syntax)
    ds = _rd(BytesIO(data), ts.is_implicit_VR, ts.is_little_endian)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    return ds
