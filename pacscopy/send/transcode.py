"""What ``send --transcode`` can do with the decoders installed here, and the re-encoding itself.

A transcode rewrites an instance the target refuses in its stored transfer
syntax into one the target accepts (explicit or implicit VR little endian):

* explicit VR big endian and deflated explicit VR little endian are only a
  different encoding: the dataset is re-encoded, no pixel is decoded (binary
  values of big endian datasets are byte-swapped element by element);
* compressed pixel data (JPEG, JPEG-LS, JPEG 2000, RLE) must be decoded, which
  pydicom does with whichever decoder plug-in is installed. pydicom decodes
  RLE itself; the JPEG families need pylibjpeg with its plug-ins (the extra
  ``pacscopy[decoders]``), GDCM or Pillow.

Group length elements (gggg,0000), retired, count the bytes of the old encoding and are not written.

The plan (``sql/ops/check/build_plan.sql``) promises a transcode only for syntaxes
:func:`transcodable` lists, and says which package adds the others.
"""

from __future__ import annotations

from typing import Any

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
#: Re-encoded without decoding anything.
REENCODABLE = (IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED)
#: What installs every decoder pacscopy knows to work (pylibjpeg and its libjpeg, openjpeg and rle plug-ins).
DECODERS_EXTRA = "pip install 'pacscopy[decoders]'"
#: Binary VRs whose values are arrays of numbers of this many bytes: swapped between big and little endian.
_SWAP = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def decoders() -> dict[str, str | None]:
    """Every compressed transfer syntax pydicom knows -> None when it can be decoded here, else what is missing."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID, AllTransferSyntaxes

    out: dict[str, str | None] = {}
    for ts in AllTransferSyntaxes:
        uid = UID(ts)
        if not uid.is_compressed:
            continue
        try:
            dec = get_decoder(uid)
        except NotImplementedError:
            out[str(uid)] = f"pydicom has no decoder for {uid.name}"
            continue
        if dec.is_available:
            out[str(uid)] = None
        else:
            out[str(uid)] = (f"no decoder for {uid.name} installed ({DECODERS_EXTRA} adds pylibjpeg; "
                             f"pydicom can also use: {'; '.join(dec.missing_dependencies)})")
    return out


def transcodable() -> list[str]:
    """The transfer syntaxes ``send --transcode`` can rewrite into explicit or implicit VR little endian here."""
    return [*REENCODABLE, *(ts for ts, missing in decoders().items() if missing is None)]


def plan_params() -> dict[str, Any]:
    """The parameters ``ops/build_plan`` takes: what can be transcoded, and why the rest cannot."""
    missing = {ts: why for ts, why in decoders().items() if why is not None}
    return {"transcodable": transcodable(), "no_decoder_ts": list(missing), "no_decoder_why": list(missing.values())}


def swap_to_little_endian(ds: Any) -> None:
    """Byte-swap, in place and recursively, the binary values of a dataset read from explicit VR big endian.

    pydicom decodes numbers (US, SL, FD, ...) when it reads, so those are written correctly in any
    encoding; the values of OW, OF, OL, OD and OV stay the bytes of the file, which pydicom writes back
    unchanged (its ``write_OWvalue``: "does not currently do the byte swapping").
    """
    import numpy as np

    for elem in ds.iterall():
        size = _SWAP.get(elem.VR)
        if size and elem.value:
            value = bytes(elem.value)
            if len(value) % size:
                raise ValueError(f"({elem.tag.group:04X},{elem.tag.element:04X}) {elem.VR}: {len(value)} bytes is "
                                 f"not a multiple of {size}")
            elem.value = np.frombuffer(value, dtype=f">u{size}").astype(f"<u{size}").tobytes()


def rewrite_syntax(ds: Any, from_ts: str, to_ts: str) -> None:
    """Make ``ds`` (read in ``from_ts``) ready to be encoded in the uncompressed ``to_ts``."""
    from pydicom.uid import UID

    src = UID(from_ts)
    if src.is_compressed:
        ds.decompress(generate_instance_uid=False)  # pydicom would mint a new SOPInstanceUID
    elif not src.is_little_endian:
        swap_to_little_endian(ds)
    ds.file_meta.TransferSyntaxUID = UID(to_ts)
