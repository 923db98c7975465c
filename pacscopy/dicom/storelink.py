"""pacscopy's own storage SCU upper layer.

:class:`StoreLink` is a storage SCU association that
pacscopy negotiates and drives itself, with each dataset streamed from a
:class:`Source` in blocks, hashed on the way, and withheld (the association
aborted before the last block) if the bytes are not the bytes the index
recorded. pynetdicom's own chunked path reads the file itself, so neither the
hash of what went over the wire nor raw datasets without a file meta would be
possible with it, and its per-message machinery costs more than the sending.
"""

from __future__ import annotations

import datetime as dt
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

import xxhash

from pacscopy.dicom.peer import Target
from pacscopy.errors import AssociationFailed, LinkLost, SourceChanged

# -- streaming sources ------------------------------------------------------------

class Source:
    """Dataset bytes to send, handed out in blocks and hashed on the way."""

    length: int = 0

    def blocks(self) -> Iterator[memoryview]:
        """The dataset in order. A block may be reused for the next one: send it before asking for more."""
        raise NotImplementedError

    @property
    def digest(self) -> str | None:
        return None

    def close(self) -> None:
        """Release what the source holds (an open file)."""


#: Bytes read from a file at a time; one buffer per process, reused (no allocation, no page faults per file).
BLOCK = 1 << 20
_buffer: bytearray | None = None


class FileSource(Source):
    """The dataset of a file from ``offset`` to the end, checked against the index's hash.

    The last block is only handed out once the whole stream has been hashed
    and found equal to ``expected``; otherwise :class:`SourceChanged` is
    raised and the receiver never gets a complete object. The bytes hashed
    are the bytes sent: both come from the same buffer.
    """

    def __init__(self, path: bytes, offset: int, expected: str | None, expected_size: int | None = None,
                 expected_mtime_ns: int | None = None) -> None:
        self.path, self.offset, self.expected = path, offset, expected
        self._fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        st = os.fstat(self._fd)
        if (expected_size is not None and st.st_size != expected_size) or \
                (expected_mtime_ns is not None and st.st_mtime_ns != expected_mtime_ns):
            os.close(self._fd)
            self._fd = -1
            raise SourceChanged(f"size or mtime changed since the scan ({st.st_size} bytes, the index says "
                                f"{expected_size})")
        self.length = max(0, st.st_size - offset)
        self._hash = xxhash.xxh3_128()

    def blocks(self) -> Iterator[memoryview]:
        global _buffer
        if _buffer is None:
            _buffer = bytearray(BLOCK)
        view = memoryview(_buffer)
        pos, end = self.offset, self.offset + self.length
        try:
            while True:
                want = min(BLOCK, end - pos)
                got = os.preadv(self._fd, [view[:want]], pos) if want else 0
                if got != want:
                    raise SourceChanged(f"the file ended {end - pos - got} bytes early")
                block = view[:got]
                self._hash.update(block)
                pos += got
                if pos >= end:
                    self._verify()  # the last block goes only if the whole stream matched
                    yield block
                    return
                yield block
        finally:
            self.close()

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

    def blocks(self) -> Iterator[memoryview]:
        yield memoryview(self.data)

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


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
_PDV_HEAD = struct.Struct(">BBIIBB")  # PDU type, reserved, PDU length, PDV item length, context id, control
_ABORT_PDU = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0])  # A-ABORT-RQ, source: service user
_RELEASE_PDU = bytes([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0])  # A-RELEASE-RQ
_PDU_NAMES = {0x01: "A-ASSOCIATE-RQ", 0x02: "A-ASSOCIATE-AC", 0x03: "A-ASSOCIATE-RJ", 0x05: "A-RELEASE-RQ",
              0x06: "A-RELEASE-RP", 0x07: "A-ABORT"}


#: Our implementation's identity in A-ASSOCIATE-RQ (a UID under the root pacscopy's synthetic data uses).
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.7.1"
IMPLEMENTATION_VERSION = "PACSCOPY"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
#: The largest P-DATA-TF we accept; we only ever receive small C-STORE responses.
OUR_MAX_PDU = 16382
_REJECT_SOURCE = {1: "service user", 2: "service provider (ACSE)", 3: "service provider (presentation)"}
_REJECT_REASON = {
    (1, 1): "no reason given", (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised", (1, 7): "called AE title not recognised",
    (2, 1): "no reason given", (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion", (3, 2): "local limit exceeded",
}
_CONTEXT_RESULT = {1: "user rejection", 2: "no reason", 3: "abstract syntax not supported",
                   4: "transfer syntaxes not supported"}


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def _ae_field(title: str) -> bytes:
    return title.encode("ascii", "replace")[:16].ljust(16, b" ")


def associate_rq(called: str, calling: str, contexts: list[tuple[int, str, str]]) -> bytes:
    """An A-ASSOCIATE-RQ PDU (PS3.8 9.3.2): one transfer syntax per presentation context."""
    items = [_item(0x10, APPLICATION_CONTEXT.encode())]
    for cid, abstract, ts in contexts:
        items.append(_item(0x20, bytes([cid, 0, 0, 0]) + _item(0x30, abstract.encode()) + _item(0x40, ts.encode())))
    user = (_item(0x51, struct.pack(">I", OUR_MAX_PDU)) + _item(0x52, IMPLEMENTATION_CLASS_UID.encode())
            + _item(0x55, IMPLEMENTATION_VERSION.encode()))
    items.append(_item(0x50, user))
    body = struct.pack(">HH", 1, 0) + _ae_field(called) + _ae_field(calling) + bytes(32) + b"".join(items)
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def parse_associate_ac(body: bytes | bytearray) -> tuple[dict[int, tuple[int, str]], int]:
    """From an A-ASSOCIATE-AC's body: {context id: (result, transfer syntax)} and the peer's maximum PDU length."""
    if len(body) < 68:
        raise ValueError("A-ASSOCIATE-AC shorter than its fixed fields")
    results: dict[int, tuple[int, str]] = {}
    max_pdu = 0
    i = 68
    while i + 4 <= len(body):
        kind, _, length = struct.unpack_from(">BBH", body, i)
        value = body[i + 4 : i + 4 + length]
        if len(value) != length:
            raise ValueError("A-ASSOCIATE-AC item runs past the end")
        if kind == 0x21 and length >= 4:
            ts = ""
            j = 4
            while j + 4 <= len(value):
                sub, _, sublen = struct.unpack_from(">BBH", value, j)
                if sub == 0x40:
                    ts = value[j + 4 : j + 4 + sublen].rstrip(b"\x00 ").decode("ascii", "replace")
                j += 4 + sublen
            results[value[0]] = (value[2], ts)
        elif kind == 0x50:
            j = 0
            while j + 4 <= len(value):
                sub, _, sublen = struct.unpack_from(">BBH", value, j)
                if sub == 0x51 and sublen == 4:
                    max_pdu = struct.unpack_from(">I", value, j + 4)[0]
                j += 4 + sublen
        i += 4 + length
    return results, max_pdu


class StoreLink:
    """An association for C-STOREs, negotiated and driven by pacscopy itself on a plain socket.

    pynetdicom's association machinery (a DUL thread polling the socket, a
    reactor thread, queues, a pydicom command Dataset per message) cost the
    sender ~2 ms of latency and CPU per C-STORE, and its import alone ~0.2 s
    and ~40 MB in every worker process. A storage SCU needs very little of
    the Upper Layer protocol: A-ASSOCIATE-RQ/AC/RJ, P-DATA-TF, A-RELEASE-RQ/RP
    and A-ABORT (PS3.8 9.3), one request at a time with its response read
    from the same socket (PS3.7 9.3.1). Anything but a well-formed response to
    the request in flight (an A-ABORT, an A-RELEASE-RQ, a closed connection, a
    timeout, a response to another message) ends the link and aborts the
    association: an empty answer is never a success. pynetdicom still does
    everything else (probe, verify, the receiver), and the tests run this
    against DCMTK, Orthanc and pynetdicom peers.
    """

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        """A connected socket, before negotiation: :meth:`open` makes usable links."""
        self.sock, self.timeout = sock, timeout
        self.lost: str | None = None
        self._closed = False
        self._rbuf = bytearray()  # bytes received and not yet taken
        self._last_io = time.monotonic()
        self._contexts: dict[tuple[str, str], int] = {}  # accepted (SOP class, transfer syntax) -> context id
        self.refused: dict[tuple[str, str], str] = {}  # proposed pairs the target did not accept, and why
        self.fragment = 1 << 20  # PDV data per P-DATA-TF, set from the peer's maximum PDU length

    @classmethod
    def open(cls, target: Target, calling_ae: str, pairs: list[tuple[str, str]], timeout: float,
             connect_timeout: float = 10.0) -> StoreLink:
        """Associate with ``target`` proposing each (SOP class, transfer syntax) pair; raises :class:`AssociationFailed`."""
        if not pairs or len(pairs) > 128:
            raise ValueError("an association needs 1 to 128 presentation contexts")
        proposed = [(2 * k + 1, sop, ts) for k, (sop, ts) in enumerate(pairs)]
        try:
            sock = socket.create_connection((target.host, target.port), timeout=min(timeout, connect_timeout))
        except OSError as e:
            raise AssociationFailed("connection", f"connection failed (refused, reset or timed out): "
                                                  f"{e.strerror or e}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(timeout)
            sock.sendall(associate_rq(target.ae, calling_ae, proposed))
            link = cls(sock, timeout)
            pdu_type, body = link._read_pdu()
        except (OSError, LinkLost) as e:
            sock.close()
            raise AssociationFailed("connection", f"connection failed (refused, reset or timed out): {e}") from None
        if pdu_type != 0x02:
            sock.close()
            if pdu_type == 0x03 and len(body) >= 4:
                result, source, reason = body[1], body[2], body[3]
                why = _REJECT_REASON.get((source, reason), f"reason {reason}")
                raise AssociationFailed("rejected", f"association rejected "
                                                    f"({'permanent' if result == 1 else 'transient'}, "
                                                    f"{_REJECT_SOURCE.get(source, source)}: {why})",
                                        permanent=result == 1, reason=(source, reason))
            if pdu_type == 0x07:
                raise AssociationFailed("aborted", "association aborted by the target during negotiation")
            raise AssociationFailed("aborted", f"association aborted: the target answered with PDU type "
                                               f"0x{pdu_type:02X}")
        try:
            results, peer_max = parse_associate_ac(body)
        except ValueError as e:
            link.abort()
            raise AssociationFailed("aborted", f"association aborted: {e}") from None
        for cid, sop, ts in proposed:
            result, got_ts = results.get(cid, (2, ""))
            if result == 0 and got_ts == ts:
                link._contexts[(sop, ts)] = cid
            else:
                link.refused[(sop, ts)] = _CONTEXT_RESULT.get(result, "refused")
        # the peer's maximum minus the PDV item header; no limit (0): 1 MB
        link.fragment = min((peer_max - 6) if peer_max > 6 else (1 << 20), 1 << 20)
        return link

    def context_id(self, sop_class: str, transfer_syntax: str) -> int | None:
        return self._contexts.get((sop_class, transfer_syntax))

    @property
    def alive(self) -> bool:
        """Still usable: nothing went wrong and the peer has not sent anything unasked (an abort, a release).

        The socket is only looked at after half a second without traffic: a peer
        closes idle associations, not busy ones, and looking costs a system call.
        """
        if self.lost is not None:
            return False
        if self._rbuf:  # the target sent more than a response (an abort, a release request)
            self._lose("the target sent something unasked")
            return False
        if time.monotonic() - self._last_io < 0.5:
            return True
        try:
            readable = bool(select.select([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            readable = True
        if readable:
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
        """The request as P-DATA-TF PDUs: headers and slices of the source's blocks in one ``sendmsg`` per block.

        No byte of the dataset is copied in user space after it was read (and hashed).
        """
        size, head = self.fragment, _PDV_HEAD
        parts: list[bytes | memoryview] = []
        for i in range(0, len(command), size):
            cfrag = command[i : i + size]
            parts += (head.pack(0x04, 0, len(cfrag) + 6, len(cfrag) + 2, cid,
                                0x03 if i + size >= len(command) else 0x01), cfrag)
        sent = 0
        for block in source.blocks():
            n = len(block)
            for i in range(0, n, size):
                frag = block[i : i + size]
                last = sent + i + len(frag) >= source.length
                parts += (head.pack(0x04, 0, len(frag) + 6, len(frag) + 2, cid, 0x02 if last else 0x00), frag)
            sent += n
            self._sendv(parts)  # the block is sent before the source may reuse its buffer
            parts = []
        if sent == 0:  # an empty dataset: one empty last fragment
            parts.append(head.pack(0x04, 0, 6, 2, cid, 0x02))
        if parts:
            self._sendv(parts)

    def _sendv(self, parts: list[bytes | memoryview]) -> None:
        """``sendmsg`` until every part is written (it may write only some of them)."""
        sock = self.sock
        while parts:
            n = sock.sendmsg(parts[:512])  # IOV_MAX is 1024
            while n and parts:
                k = len(parts[0])
                if n >= k:
                    n -= k
                    parts.pop(0)
                else:
                    parts[0] = memoryview(parts[0])[n:]
                    n = 0

    def _recv(self, n: int) -> bytearray:
        """Exactly ``n`` bytes; reads as much as has arrived (a whole response is usually one read)."""
        buf = self._rbuf
        while len(buf) < n:
            if _QUICKACK is not None:
                # Acknowledge at once: a peer with Nagle's algorithm on (DCMTK without TCP_NODELAY=1, Orthanc)
                # holds the rest of its response until our ACK, which Linux would otherwise delay ~40 ms.
                # The flag does not stick, so it is set before every read.
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            chunk = self.sock.recv(max(65536, n - len(buf)))
            if not chunk:
                raise LinkLost("the target closed the connection")
            buf += chunk
        out = buf[:n]
        del buf[:n]
        self._last_io = time.monotonic()
        return out

    def _read_response(self) -> dict[int, bytes]:
        """Read PDUs until the response's command set is complete (and its dataset, should one follow)."""
        command = bytearray()
        rsp: dict[int, bytes] | None = None
        dataset_pending = False
        while True:
            pdu_type, body = self._read_pdu()
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

    def _read_pdu(self) -> tuple[int, bytearray]:
        pdu_type, _, length = struct.unpack(">BBI", self._recv(6))
        return pdu_type, self._recv(length)

    def abort(self) -> None:
        """Send A-ABORT and close: the target must not keep a half-sent object. Once is enough."""
        if self.lost is None:
            self.lost = "aborted"
        if self._closed:
            return
        try:
            self.sock.sendall(_ABORT_PDU)
        except OSError:
            pass
        self._close_socket()

    def close(self) -> None:
        """Release the association (A-RELEASE-RQ, wait for A-RELEASE-RP); abort if the target does not answer."""
        if self.lost is not None:
            self._close_socket()
            return
        self.lost = "released"
        try:
            self.sock.sendall(_RELEASE_PDU)
            for _ in range(8):  # a late P-DATA may still come: skip it
                pdu_type, _ = self._read_pdu()
                if pdu_type in (0x06, 0x07):
                    break
            else:
                self.sock.sendall(_ABORT_PDU)
        except (OSError, LinkLost):
            pass
        self._close_socket()

    def _close_socket(self) -> None:
        self._closed = True
        try:
            self.sock.close()
        except OSError:
            pass
