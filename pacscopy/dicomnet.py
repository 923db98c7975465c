"""DICOM networking helpers shared by send, probe, verify and receive.

The one unusual piece is :class:`StoreLink`: C-STOREs on an association that
pynetdicom negotiated, with the dataset streamed from a :class:`Source` in
P-DATA sized chunks, hashed on the way, and withheld (the association aborted
before the last fragment) if the bytes are not the bytes the index recorded.
pynetdicom's own chunked path reads the file itself, so neither the hash of
what went over the wire nor raw datasets without a file meta would be
possible with it, and its per-message machinery costs more than the sending.

pynetdicom is imported only where it is used: the main process of ``pacscopy
send`` parses targets and never needs it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import struct
import select
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import TYPE_CHECKING, Any

import xxhash

from pacscopy.errors import InputError

if TYPE_CHECKING:
    from pynetdicom import AE

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
    from pynetdicom.status import GENERAL_STATUS, STORAGE_SERVICE_CLASS_STATUS, code_to_category

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
    from pynetdicom import evt

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


def _uid_element(tag: int, uid: str) -> bytes:
    value = uid.encode("ascii")
    if len(value) % 2:
        value += b"\x00"
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


def _store_command(sop_class: str, sop_instance: str, msg_id: int, priority: int = 2) -> bytes:
    """The C-STORE-RQ command set in implicit VR little endian (PS3.7 9.3.1.1), encoded by hand.

    pydicom's general writer costs more per message than the rest of the send.
    """
    body = b"".join([
        _uid_element(0x00000002, sop_class),
        struct.pack("<HHIH", 0, 0x0100, 2, 0x0001),  # CommandField: C-STORE-RQ
        struct.pack("<HHIH", 0, 0x0110, 2, msg_id),
        struct.pack("<HHIH", 0, 0x0700, 2, priority),
        struct.pack("<HHIH", 0, 0x0800, 2, 0x0001),  # CommandDataSetType: a dataset follows
        _uid_element(0x00001000, sop_instance),
    ])
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def parse_command(data: bytes) -> dict[int, bytes]:
    """The elements of a command set (implicit VR little endian): element number -> raw value.

    Raises ValueError when an element runs past the end.
    """
    out: dict[int, bytes] = {}
    i, n = 0, len(data)
    while i + 8 <= n:
        group, elem, length = struct.unpack_from("<HHI", data, i)
        i += 8
        if i + length > n:
            raise ValueError(f"command element ({group:04X},{elem:04X}) runs past the end")
        if group == 0:
            out[elem] = data[i : i + length]
        i += length
    if i != n:
        raise ValueError("trailing bytes after the last command element")
    return out


@dataclass
class StoreResult:
    status: int | None
    error: str | None
    started: dt.datetime
    finished: dt.datetime
    association_lost: bool = False


_PDV_HEAD = struct.Struct(">BBIIBB")  # PDU type, reserved, PDU length, PDV item length, context id, control
_ABORT_PDU = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0])  # A-ABORT-RQ, source: service user
_PDU_NAMES = {0x01: "A-ASSOCIATE-RQ", 0x02: "A-ASSOCIATE-AC", 0x03: "A-ASSOCIATE-RJ", 0x05: "A-RELEASE-RQ",
              0x06: "A-RELEASE-RP", 0x07: "A-ABORT"}


class LinkLost(Exception):
    """The association ended or broke while a C-STORE was in flight."""


class StoreLink:
    """An established association whose socket pacscopy drives itself for a run of C-STOREs.

    pynetdicom negotiates the association and releases it; in between, its two
    polling threads (the DUL reading the socket, the association's reactor
    serving requests) cost ~2 ms of latency and CPU per C-STORE through sleeps,
    queues and a command Dataset per message. A storage SCU needs none of
    that: it writes a request and reads one response. So while a link holds
    the association, the DUL thread is told there is never anything to read,
    the reactor is paused, and :meth:`store` writes the P-DATA-TF PDUs and
    reads the C-STORE-RSP on the socket itself, one request at a time
    (PS3.8 9.3.5, PS3.7 9.3.1.2). Anything but a well-formed response to the
    request in flight (an A-ABORT, an A-RELEASE-RQ, a closed connection, a
    timeout, a response to another message) ends the link and aborts the
    association: an empty answer is never a success.
    """

    def __init__(self, assoc: Any, timeout: float) -> None:
        self.assoc, self.timeout = assoc, timeout
        self.dul = assoc.dul
        self.lost: str | None = None
        self._held = False
        self._contexts: dict[tuple[str, str], int] = {}
        for cx in assoc.accepted_contexts:
            self._contexts.setdefault((str(cx.abstract_syntax), str(cx.transfer_syntax[0])), cx.context_id)
        max_pdu = int(assoc.acceptor.maximum_length or 0)
        self.fragment = (max_pdu - 6) if max_pdu > 6 else (1 << 20)  # PDV data per P-DATA-TF
        self._hold()

    def _hold(self) -> None:
        dul, assoc = self.dul, self.assoc
        deadline = time.monotonic() + 5
        while not dul.to_provider_queue.empty():  # never overtake anything pynetdicom still sends
            if time.monotonic() > deadline:
                raise LinkLost("pynetdicom did not send its queued PDUs")
            time.sleep(0.0005)
        passed = threading.Event()

        def nothing_to_read() -> bool:
            passed.set()
            return False

        dul._is_transport_event = nothing_to_read  # instance attribute shadows the method
        dul._run_loop_delay = 0.05  # nothing to do for it meanwhile: poll rarely
        assoc._reactor_checkpoint.clear()
        while not assoc._is_paused or not passed.is_set():  # both threads off the socket
            if time.monotonic() > deadline or not dul.is_alive():
                self._release_hold()
                raise LinkLost("pynetdicom's threads did not pause")
            time.sleep(0.0001)
        self.sock: socket.socket = dul.socket.socket
        self._saved_timeout = self.sock.gettimeout()
        self.sock.settimeout(self.timeout)
        self._held = True

    def _release_hold(self) -> None:
        """Give the socket back to pynetdicom (for release or abort)."""
        dul, assoc = self.dul, self.assoc
        if "_is_transport_event" in vars(dul):
            del dul._is_transport_event
        dul._run_loop_delay = 0.001
        if self._held:
            try:
                self.sock.settimeout(self._saved_timeout)
            except OSError:
                pass
            self._held = False
        dul._idle_timer.restart()  # our traffic did not restart pynetdicom's network idle timer
        assoc._reactor_checkpoint.set()

    def context_id(self, sop_class: str, transfer_syntax: str) -> int | None:
        return self._contexts.get((sop_class, transfer_syntax))

    @property
    def alive(self) -> bool:
        """Still usable: nothing went wrong and the peer has not sent anything unasked (an abort, a release)."""
        if self.lost is not None:
            return False
        try:
            ready, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            ready = [True]
        if ready:
            self._lose("the target ended the association while it was idle")
            return False
        return True

    def store(self, source: Source, sop_class: str, sop_instance: str, transfer_syntax: str,
              msg_id: int) -> StoreResult:
        """One C-STORE with the dataset streamed from ``source``; never raises for peer trouble.

        Raises :class:`SourceChanged` (after aborting, with the last fragment
        withheld) when the bytes read are not the scanned ones.
        """
        started = dt.datetime.now()
        if self.lost is not None:
            return StoreResult(None, f"association lost: {self.lost}", started, started, True)
        cid = self.context_id(sop_class, transfer_syntax)
        if cid is None:
            return StoreResult(None, f"no accepted presentation context for {sop_class} in {transfer_syntax}",
                               started, dt.datetime.now())
        try:
            self._write(cid, _store_command(sop_class, sop_instance, msg_id), source)
        except SourceChanged:
            self._lose("source changed")
            raise
        except OSError as e:
            self._lose(f"send failed: {e.strerror or e}")
            return StoreResult(None, f"send failed: {type(e).__name__}: {e}", started, dt.datetime.now(), True)
        try:
            rsp = self._read_response()
        except TimeoutError:
            self._lose("no response")
            return StoreResult(None, f"no response within {self.timeout:g} s", started, dt.datetime.now(), True)
        except (LinkLost, OSError, ValueError) as e:
            self._lose(str(e))
            return StoreResult(None, f"no response: {e}", started, dt.datetime.now(), True)
        finished = dt.datetime.now()
        field = int.from_bytes(rsp.get(0x0100, b""), "little") if 0x0100 in rsp else None
        answered = int.from_bytes(rsp.get(0x0120, b""), "little") if 0x0120 in rsp else None
        if field != 0x8001 or answered != msg_id:
            self._lose("unexpected message")
            return StoreResult(None, f"unexpected response (command 0x{field or 0:04X} to message {answered}, "
                                     f"expected a C-STORE-RSP to {msg_id})", started, finished, True)
        if len(rsp.get(0x0900, b"")) != 2:
            self._lose("response without a status")
            return StoreResult(None, "invalid response without a status", started, finished, True)
        status = int.from_bytes(rsp[0x0900], "little")
        comment = rsp.get(0x0902, b"").rstrip(b"\x00 ").decode("ascii", "replace") or None
        return StoreResult(status, comment, started, finished)

    def _write(self, cid: int, command: bytes, source: Source) -> None:
        """The request as P-DATA-TF PDUs, written in few large ``sendall`` calls."""
        size, head, out = self.fragment, _PDV_HEAD, bytearray()
        sendall = self.sock.sendall

        def add(payload: bytes | memoryview, control: int) -> None:
            out.extend(head.pack(0x04, 0, len(payload) + 6, len(payload) + 2, cid, control))
            out.extend(payload)
            if len(out) >= (1 << 18):
                sendall(out)
                out.clear()

        for i in range(0, len(command), size):
            add(command[i : i + size], 0x03 if i + size >= len(command) else 0x01)
        it = source.chunks(size)
        prev = next(it, b"")
        for nxt in it:
            add(prev, 0x00)
            prev = nxt
        add(prev, 0x02)
        if out:
            sendall(out)

    def _recv(self, n: int) -> bytearray:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if not k:
                raise LinkLost("the target closed the connection")
            got += k
        return buf

    def _read_response(self) -> dict[int, bytes]:
        """Read PDUs until the response's command set is complete (and its dataset, should one follow)."""
        command = bytearray()
        rsp: dict[int, bytes] | None = None
        dataset_pending = False
        while True:
            pdu_type, _, length = struct.unpack(">BBI", self._recv(6))
            body = self._recv(length)
            if pdu_type != 0x04:
                if pdu_type == 0x07 and len(body) >= 4:
                    raise LinkLost(f"the target sent A-ABORT (source {body[2]}, reason {body[3]})")
                name = _PDU_NAMES.get(pdu_type, f"PDU type 0x{pdu_type:02X}")
                raise LinkLost(f"the target sent {name} instead of a C-STORE response")
            i = 0
            while i + 6 <= len(body):
                item_len = int.from_bytes(body[i : i + 4], "big")
                control = body[i + 5]
                if item_len < 2 or i + 4 + item_len > len(body):
                    raise LinkLost("malformed P-DATA-TF PDU from the target")
                if control & 0x01:  # a command fragment
                    command.extend(body[i + 6 : i + 4 + item_len])
                    if control & 0x02:
                        rsp = parse_command(bytes(command))
                        # CommandDataSetType 0x0101: no dataset follows; anything else: one does
                        dataset_pending = rsp.get(0x0800, b"\x01\x01") != b"\x01\x01"
                elif control & 0x02:  # the last fragment of a dataset sent with the response: ignored
                    dataset_pending = False
                i += 4 + item_len
            if rsp is not None and not dataset_pending:
                return rsp

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why
            self.abort()

    def abort(self) -> None:
        """Abort the association (the target must not keep a half-sent object)."""
        if self.lost is None:
            self.lost = "aborted"
        self._release_hold()
        try:
            self.assoc.abort()
        except Exception:  # the connection may be gone already
            pass

    def close(self) -> None:
        """Release the association normally, or abort it if the link was lost."""
        if self.lost is not None:
            return
        self.lost = "released"
        self._release_hold()
        try:
            self.assoc.release()
        except Exception:
            pass


def make_ae(calling_ae: str, timeout: float) -> AE:
    from pynetdicom import AE
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
