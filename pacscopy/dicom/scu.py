"""pacscopy as a pynetdicom SCU: one way to open an association, C-ECHO and C-FIND.

Probe, verify, reconcile and echo all associate through :func:`associate`, so a
target that cannot be reached, rejects or aborts reads the same everywhere:
``<target> did not accept an association for <service>: <reason>; check ...``.
(The sender drives its own upper layer instead: :class:`pacscopy.dicom.storelink.StoreLink`.)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from pacscopy.dicom.peer import Target, nodelay_handlers, rejection_advice
from pacscopy.dicom.storelink import StoreLink
from pacscopy.errors import AssociationFailed, PacscopyError

FIND = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Query/Retrieve Information Model - FIND
GET = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Query/Retrieve Information Model - GET
MOVE = "1.2.840.10008.5.1.4.1.2.2.2"  # Study Root Query/Retrieve Information Model - MOVE
COMMIT = "1.2.840.10008.1.20.1"  # Storage Commitment Push Model SOP Class
COMMIT_INSTANCE = "1.2.840.10008.1.20.1.1"  # its well-known instance
VERIFICATION = "1.2.840.10008.1.1"  # C-ECHO
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"

Contexts = Iterable[tuple[str, Sequence[str]]]


def make_ae(calling_ae: str, timeout: float) -> Any:
    """A pynetdicom AE with every timeout set to ``timeout`` (connecting: at most 10 s)."""
    from pynetdicom import AE

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = min(timeout, 10)
    return ae


def request(target: Target, calling_ae: str, timeout: float, contexts: Contexts, *,
            ext_neg: list[Any] | None = None, handlers: list[Any] | None = None) -> Any:
    """Ask ``target`` for an association proposing ``contexts`` (abstract syntax, transfer syntaxes;
    none: pynetdicom's defaults). The association is returned established or not."""
    ae = make_ae(calling_ae, timeout)
    for abstract, syntaxes in contexts:
        if syntaxes:
            ae.add_requested_context(abstract, list(syntaxes))
        else:
            ae.add_requested_context(abstract)
    return ae.associate(target.host, target.port, ae_title=target.ae, ext_neg=ext_neg,
                        evt_handlers=[*nodelay_handlers(), *(handlers or [])])


def refusal(target: Target, assoc: Any, what: str, calling_ae: str, timeout: float) -> str:
    """Why ``assoc`` was not established, in the one wording pacscopy uses.

    Asked again over pacscopy's own upper layer (:class:`StoreLink`): pynetdicom
    logs an A-ASSOCIATE-RJ's reason but keeps none of it, and the reason says what to configure.
    """
    check = f"check AE title, host, port and that the target knows the calling AE title {calling_ae}"
    try:
        StoreLink.open(target, calling_ae, [(VERIFICATION, IMPLICIT_VR_LITTLE_ENDIAN)], min(timeout, 10)).close()
    except AssociationFailed as e:
        if e.kind == "connection":
            why = f"it could not be reached ({e}): check host and port"
        elif e.permanent:
            why = f"{e}: {rejection_advice(e.reason, calling_ae, target)}"
        else:
            why = f"{e}: {check}"
    else:
        why = (f"it aborted the association (no acceptable presentation context for {what}?)"
               if assoc.is_aborted or not assoc.is_rejected else f"it rejected the association, then accepted one "
               f"when asked again: {check}")
    return f"{target} did not accept an association for {what}: {why}"


def associate(target: Target, calling_ae: str, timeout: float, contexts: Contexts, what: str, *,
              ext_neg: list[Any] | None = None, handlers: list[Any] | None = None,
              error: type[PacscopyError] = PacscopyError) -> Any:
    """An established association to ``target`` for ``what`` (e.g. ``C-FIND``), or ``error`` saying why not.

    Verification is proposed too, so that the association is established even
    when the target refuses the service's own context: the caller then says
    exactly that. Responses are kept from pynetdicom's reactor (:func:`_keep_responses`).
    """
    contexts = list(contexts)
    if not any(abstract == VERIFICATION for abstract, _ in contexts):
        contexts.append((VERIFICATION, [IMPLICIT_VR_LITTLE_ENDIAN]))
    assoc = request(target, calling_ae, timeout, contexts, ext_neg=ext_neg, handlers=handlers)
    if not assoc.is_established:
        raise error(refusal(target, assoc, what, calling_ae, timeout))
    _keep_responses(assoc)
    return assoc


def _keep_responses(assoc: Any) -> None:
    """Work around a race in pynetdicom 3.0's reactor: responses it takes go back on the queue.

    ``send_c_find`` (and C-GET, C-MOVE, N-ACTION) pause the association's
    reactor thread by clearing an event and waiting for a flag, but the flag
    can still say "paused" from the reactor's previous turn while it is already
    past the wait; the reactor then takes the next response off the queue,
    logs "Received unexpected C-FIND service message" and drops it: a match
    silently missing from the C-FIND results. A response is never a request the
    reactor could serve, so it is put back at the head of the queue, where the
    waiting call finds it. (The sender avoids the same race by driving its
    socket itself: BENCHMARKS.md.)
    """
    if getattr(assoc, "_pacscopy_keeps_responses", False):
        return
    serve = assoc._serve_request

    def serve_request(msg: Any, context_id: int) -> None:
        if getattr(msg, "MessageIDBeingRespondedTo", None) is not None:
            q = assoc.dimse.msg_queue
            with q.mutex:
                q.queue.appendleft((context_id, msg))
                q.not_empty.notify()
            time.sleep(0.001)  # let the waiting call take it before the reactor looks again
            return
        serve(msg, context_id)

    assoc._serve_request = serve_request
    assoc._pacscopy_keeps_responses = True


def alive(assoc: Any) -> bool:
    """Is the association still usable? An A-ABORT or a closed connection is seen at once.

    pynetdicom's ``is_established`` only changes when its reactor thread gets to
    the abort; asking the ACSE and DUL directly avoids sending the next request
    on a dead association and waiting out the DIMSE timeout.
    """
    try:
        return bool(assoc.is_established and not assoc.acse.is_aborted() and assoc.dul.is_alive()
                    and assoc.dul.state_machine.current_state == "Sta6")  # Sta6: established, ready
    except AttributeError:
        return bool(assoc.is_established)


def echo(target: Target, calling_ae: str = "PACSCOPY", timeout: float = 10,
         error: type[PacscopyError] = PacscopyError) -> int | None:
    """C-ECHO the target; its status (None: no status in the answer). No association: ``error``."""
    assoc = associate(target, calling_ae, timeout, [(VERIFICATION, ())], "C-ECHO", error=error)
    try:
        st = assoc.send_c_echo()
        return int(st.Status) if "Status" in st else None
    finally:
        assoc.release()


def find(assoc: Any, query: Any, model: str = FIND, error: type[PacscopyError] = PacscopyError) -> list[Any]:
    """Run one C-FIND on ``assoc``; the identifiers of its matches, or ``error`` when it does not succeed."""
    out = []
    for status, ident in assoc.send_c_find(query, model):
        if not status or "Status" not in status:
            raise error("no response to C-FIND (timeout or association aborted)")
        st = int(status.Status)
        if st in (0xFF00, 0xFF01):
            if ident is not None:
                out.append(ident)
        elif st == 0x0000:
            return out
        else:
            raise error(f"C-FIND failed with status 0x{st:04X}")
    return out
