"""How often pynetdicom 3.0 loses a C-FIND response, with and without pacscopy's work-around.

N IMAGE-level C-FINDs on one association against pacscopy's own receiver
holding 5 instances of one series; a query that returns fewer than 5 matches
lost a pending response to the association's reactor thread (a race in its
pause, see ``_keep_responses`` in pacscopy/dicom/scu.py). ``plain`` is a
pynetdicom association as pynetdicom makes it, ``patched`` one made by
pacscopy's verify.

usage: python scripts/bench_find_race.py [--queries 2000] [--mode plain|patched|both]
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydicom.dataset import Dataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian  # noqa: E402

from pacscopy.dicom.peer import Target, nodelay_handlers  # noqa: E402
from pacscopy.dicom.scu import make_ae  # noqa: E402
from pacscopy.receive import Receiver  # noqa: E402
from pacscopy.testing.synth import _UIDs, make_dataset, part10_bytes  # noqa: E402
from pacscopy.dicom.scu import FIND  # noqa: E402
from pacscopy.dicom.scu import associate as _associate  # noqa: E402


def run(queries: int, patched: bool) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="pacscopy-race-"))
    uid, rng = _UIDs(random.Random(1)), np.random.default_rng(1)
    study, series = uid(), uid()
    (tmp / "rx").mkdir()
    for _ in range(5):
        ds = make_dataset(uid, rng, patient_id="P", patient_name="A^B", birth_date="19700101", study_uid=study,
                          series_uid=series, accession="A", study_date="20200101", rows=8, columns=8)
        (tmp / "rx" / f"{ds.SOPInstanceUID}.dcm").write_bytes(part10_bytes(ds))
    rx = Receiver(tmp / "rx")
    port = rx.start()
    if patched:
        assoc = _associate(Target(rx.ae_title, "127.0.0.1", port), "PACSCOPY", 30,
                           [(FIND, [ExplicitVRLittleEndian])], "C-FIND")
    else:
        ae = make_ae("PACSCOPY", 30)
        ae.add_requested_context(FIND, [ExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.1", port, ae_title=rx.ae_title, evt_handlers=nodelay_handlers())
    short, t0 = 0, time.monotonic()
    for _ in range(queries):
        q = Dataset()
        q.QueryRetrieveLevel = "IMAGE"
        q.StudyInstanceUID, q.SeriesInstanceUID, q.SOPInstanceUID = study, series, ""
        got = sum(1 for s, _ in assoc.send_c_find(q, FIND) if s and s.get("Status") in (0xFF00, 0xFF01))
        short += got != 5
    took = time.monotonic() - t0
    assoc.release()
    rx.stop()
    return f"{'patched' if patched else 'plain'}: {queries} queries, {short} lost a match, {took:.1f} s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--mode", choices=("plain", "patched", "both"), default="both")
    a = p.parse_args()
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    for patched in {"plain": [False], "patched": [True], "both": [False, True]}[a.mode]:
        print(run(a.queries, patched), flush=True)


if __name__ == "__main__":
    main()
