"""pacscopy's built-in receiver: a Storage SCP that writes what it gets into a folder.

A dry-run target for users and the target of ``scripts/demo``. Each object is
written as a Part 10 file named after its SOPInstanceUID, with the dataset
bytes exactly as received (no decoding), atomically (temp file + rename).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from pacscopy.dicomnet import nodelay_handlers

log = logging.getLogger(__name__)


@dataclass
class Receiver:
    """A Storage SCP on ``host:port`` writing into ``storage``."""

    storage: Path
    port: int = 0
    ae_title: str = "PACSCOPY_RX"
    host: str = "127.0.0.1"
    on_store: Callable[[str, Path], None] | None = None
    received: int = 0
    _server: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _handle_store(self, event: Any) -> int:
        try:
            req = event.request
            sop = str(req.AffectedSOPInstanceUID)
            if not sop or "/" in sop or sop.startswith("."):
                return 0xC210  # cannot understand: no usable SOPInstanceUID
            self.storage.mkdir(parents=True, exist_ok=True)
            final = self.storage / f"{sop}.dcm"
            tmp = self.storage / f".{sop}.{threading.get_ident()}.part"
            with open(tmp, "wb") as f:
                f.write(event.encoded_dataset(include_meta=True))
            os.replace(tmp, final)
            with self._lock:
                self.received += 1
            if self.on_store:
                self.on_store(sop, final)
            return 0x0000
        except OSError as e:
            log.error("cannot store %s: %s", getattr(event.request, "AffectedSOPInstanceUID", "?"), e)
            return 0xA700  # out of resources: the sender will retry

    def start(self, block: bool = False) -> int:
        """Start listening; return the port (useful with ``port=0``)."""
        ae = AE(ae_title=self.ae_title)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.maximum_associations = 16
        handlers = [(evt.EVT_C_STORE, self._handle_store), *nodelay_handlers()]
        if block:
            ae.start_server((self.host, self.port), block=True, evt_handlers=handlers)
            return self.port
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        self.port = self._server.server_address[1]
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
