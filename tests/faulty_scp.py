"""A Storage SCP that misbehaves in one chosen way, for fault tests. Runs as its own process.

Modes:
  reject      reject every association (permanent rejection)
  abort3      abort the association on the 3rd C-STORE it receives (once), then behave
  a700        answer 0xA700 (out of resources) to the first attempt of every instance, then store it
  c000        answer 0xC000 (cannot understand) to every C-STORE
  silent2     never answer the 2nd C-STORE (the sender must time out), then behave
Each stored instance is written to STORAGE/<SOPInstanceUID>.dcm; every request is logged.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

mode, port, storage, ae_title = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
lock = threading.Lock()
seen: dict[str, int] = {}
count = [0]


def handle_store(event):
    sop = str(event.request.AffectedSOPInstanceUID)
    with lock:
        count[0] += 1
        n = count[0]
        seen[sop] = seen.get(sop, 0) + 1
        first = seen[sop] == 1
    print(f"C-STORE {n} {sop} attempt {seen[sop]}", flush=True)
    if mode == "abort3" and n == 3:
        event.assoc.abort()
        return 0x0000  # never arrives: the association is gone
    if mode == "silent2" and n == 2:
        import time

        time.sleep(8)
        event.assoc.abort()
        return 0x0000
    if mode == "a700" and first:
        return 0xA700
    if mode == "c000":
        return 0xC000
    (storage / f"{sop}.dcm").write_bytes(event.encoded_dataset(include_meta=True))
    return 0x0000


ae = AE(ae_title=ae_title)
for cx in AllStoragePresentationContexts:
    ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
ae.add_supported_context(Verification)
if mode == "reject":
    ae.require_calling_aet = ["SOMEONE_ELSE"]  # every association is rejected
print(f"faulty SCP {mode} on {port}", flush=True)
ae.start_server(("127.0.0.1", port), block=True, evt_handlers=[(evt.EVT_C_STORE, handle_store)])
