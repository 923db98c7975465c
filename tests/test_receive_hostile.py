"""The built-in receiver against what it cannot catalogue: refused on C-STORE, skipped at restart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pynetdicom import AE

from pacscopy.receive import Receiver

from . import hostile
from .conftest import have

pytestmark = pytest.mark.skipif(not have("storescu"), reason="DCMTK storescu not installed")


def storescu(port: int, path: Path) -> str:
    """Send one file with DCMTK's storescu (a real sender that does not judge the object)."""
    r = subprocess.run(["storescu", "-d", "-aec", "RX", "127.0.0.1", str(port), str(path)],
                       capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr


def echo(port: int) -> bool:
    ae = AE(ae_title="ECHOSCU")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="RX")
    try:
        return bool(assoc.is_established and assoc.send_c_echo().Status == 0)
    finally:
        if assoc.is_established:
            assoc.release()


def test_a_1000_deep_object_is_refused_and_the_receiver_goes_on(tmp_path: Path) -> None:
    deep_sop, data = hostile.deep_object(1000)
    deep = tmp_path / "deep.dcm"
    deep.write_bytes(data)
    good = tmp_path / "good.dcm"
    good_sop = "1.2.826.0.1.3680043.8.498.7.4242.1"
    good.write_bytes(hostile.image(sop=good_sop))
    rx = Receiver(tmp_path / "rx", ae_title="RX")
    port = rx.start()
    try:
        out = storescu(port, deep)
        assert "0xc000: Error: Cannot understand" in out, out
        assert "ErrorComment" in out and "corrupt: nesting_too_deep" in out, out  # it says why
        assert not (tmp_path / "rx" / f"{deep_sop}.dcm").exists()
        assert deep_sop not in rx.catalogue
        out = storescu(port, good)
        assert good_sop in rx.catalogue, out
        assert echo(port)
    finally:
        rx.stop()


def test_a_poisoned_storage_folder_never_stops_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "rx"
    store.mkdir()
    deep_sop, data = hostile.deep_object(1000)
    (store / f"{deep_sop}.dcm").write_bytes(data)
    _, data = hostile.deep_object(5000, defined=True)
    (store / "deeper.dcm").write_bytes(data)
    (store / "garbage.dcm").write_bytes(b"\x00\x01garbage" * 100)
    (store / "empty.dcm").write_bytes(b"")
    (store / "adir.dcm").mkdir()  # not a file: reading it fails
    good_sop = "1.2.826.0.1.3680043.8.498.7.4242.2"
    (store / f"{good_sop}.dcm").write_bytes(hostile.image(sop=good_sop))
    rx = Receiver(store, ae_title="RX")
    port = rx.start()
    try:
        assert set(rx.catalogue) == {good_sop}
        assert echo(port)
    finally:
        rx.stop()
