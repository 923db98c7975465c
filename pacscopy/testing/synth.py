"""Synthetic archives for the demo, the tests and the benchmarks.

:func:`make_archive` writes a small restored-archive tree: healthy studies in
the encodings old archives hold (Part 10 explicit and implicit VR, raw
datasets without meta, big endian), and, on request, one planted case of
every defect the scanner must classify and every conflict the checks must
find. It returns a manifest: for each planted file, the status and reason a
careful human would give it, and the check ids it must trigger. Everything
is seeded: the same call writes the same bytes.
"""

from __future__ import annotations

import copy
import os
import warnings
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_dataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    SecondaryCaptureImageStorage,
)

ROOT_UID = "1.2.826.0.1.3680043.8.498.7"  # a sub-root of pydicom's UID prefix
PRIVATE_SOP_CLASS = "1.2.840.113619.4.27"  # a vendor-private storage class (GE raw data)


@dataclass
class Planted:
    """What a planted file must be classified as, and what checks it must trigger."""

    status: str
    reason: str | None = None
    checks: set[str] = field(default_factory=set)


@dataclass
class Manifest:
    root: Path
    expected: dict[str, Planted] = field(default_factory=dict)  # relative path -> expectation
    #: relative paths of special entries (FIFO, links) that are not regular files
    specials: dict[str, Planted] = field(default_factory=dict)

    def add(self, rel: str, status: str = "ok", reason: str | None = None, *checks: str) -> None:
        self.expected[rel] = Planted(status, reason, set(checks))


class _UIDs:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{ROOT_UID}.{self.rng.randrange(1, 10**8)}.{self.n}"


def make_dataset(
    uid: _UIDs,
    rng: np.random.Generator,
    *,
    patient_id: str,
    patient_name: str,
    birth_date: str,
    study_uid: str,
    series_uid: str,
    accession: str,
    study_date: str,
    modality: str = "CT",
    series_number: int = 1,
    instance_number: int = 1,
    rows: int = 64,
    columns: int = 64,
    frames: int = 1,
    sop_class: str = CTImageStorage,
) -> Dataset:
    """A small, valid image dataset with noise pixels (no natural zero runs)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid()
    ds.StudyDate = study_date
    ds.StudyTime = "101010"
    ds.AccessionNumber = accession
    ds.Modality = modality
    ds.InstitutionName = "Old Hospital"
    ds.StudyDescription = f"{modality} study"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = birth_date
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = rng.integers(1, 4095, size=rows * columns * frames, dtype=np.uint16).tobytes()
    return ds


def _meta(ds: Dataset, syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _for_syntax(ds: Dataset, syntax: str) -> Dataset:
    """pydicom writes OW bytes as they are: swap 16-bit pixels for big endian ourselves."""
    if syntax != ExplicitVRBigEndian or "PixelData" not in ds or ds.get("BitsAllocated") != 16:
        return ds
    ds = copy.deepcopy(ds)
    ds.PixelData = np.frombuffer(ds.PixelData, dtype="<u2").astype(">u2").tobytes()
    return ds


def part10_bytes(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> bytes:
    """Encode ``ds`` as a Part 10 file (preamble, DICM, meta, dataset)."""
    ds = _for_syntax(ds, syntax)
    ds.file_meta = _meta(ds, syntax)
    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def raw_bytes(ds: Dataset, syntax: str = ImplicitVRLittleEndian) -> bytes:
    """Encode ``ds`` as a bare dataset: no preamble, no meta (as old archives hold)."""
    ds = _for_syntax(ds, syntax)
    buf = DicomBytesIO()
    buf.is_little_endian = syntax != ExplicitVRBigEndian
    buf.is_implicit_VR = syntax == ImplicitVRLittleEndian
    write_dataset(buf, ds)
    return buf.getvalue()


def meta_bytes(ds: Dataset, syntax: str) -> bytes:
    """Preamble + DICM + file meta only."""
    full = part10_bytes(ds, syntax)
    return full[: len(full) - len(raw_bytes(copy.deepcopy(ds), syntax))]


def make_archive(
    root: Path,
    *,
    seed: int = 7,
    patients: int = 3,
    studies_per_patient: int = 2,
    series_per_study: int = 2,
    instances_per_series: int = 3,
    defects: bool = True,
    conflicts: bool = True,
    specials: bool = True,
) -> Manifest:
    """Write a synthetic restored archive under ``root``; return its manifest."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pyrng = random.Random(seed)
    rng = np.random.default_rng(seed)
    uid = _UIDs(pyrng)
    man = Manifest(root)
    syntaxes = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian]
    healthy: list[tuple[str, Dataset]] = []

    def write(rel: str, data: bytes) -> Path:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    k = 0
    for p in range(patients):
        pid = f"PID{p + 1:05d}"
        name = f"DOE^PATIENT{p + 1}"
        birth = f"19{50 + p:02d}0{1 + p % 9}15"
        for s in range(studies_per_patient):
            study = uid()
            acc = f"ACC{p + 1:03d}{s + 1:02d}"
            date = f"{2005 + (p + s) % 15}0{1 + s % 9}1{p % 10}"
            for se in range(series_per_study):
                series = uid()
                modality = ("CT", "MR")[se % 2]
                for i in range(instances_per_series):
                    ds = make_dataset(
                        uid, rng, patient_id=pid, patient_name=name, birth_date=birth,
                        study_uid=study, series_uid=series, accession=acc, study_date=date,
                        modality=modality, series_number=se + 1, instance_number=i + 1,
                        sop_class=CTImageStorage if modality == "CT" else MRImageStorage,
                    )
                    syntax = syntaxes[k % len(syntaxes)]
                    rel = f"vol1/{pid}/{study[-6:]}/{series[-6:]}/IM{i + 1:04d}.dcm"
                    if k % 7 == 6:  # some raw datasets without meta, as old archives hold
                        write(rel, raw_bytes(ds, ImplicitVRLittleEndian))
                    else:
                        write(rel, part10_bytes(ds, syntax))
                    man.add(rel)
                    healthy.append((rel, ds))
                    k += 1

    # Deep nesting and non-ASCII names: healthy files in awkward places.
    deep = "vol1/deep/" + "/".join(f"d{n}" for n in range(30)) + "/IMDEEP.dcm"
    ds = copy.deepcopy(healthy[0][1])
    ds.SOPInstanceUID, ds.InstanceNumber = uid(), 90
    write(deep, part10_bytes(ds))
    man.add(deep)
    healthy.append((deep, ds))
    ds = copy.deepcopy(healthy[1][1])
    ds.SOPInstanceUID, ds.InstanceNumber = uid(), 91
    utf8_name = "vol1/Müller_Ørsted_画像.dcm"
    write(utf8_name, part10_bytes(ds))
    man.add(utf8_name)
    healthy.append((utf8_name, ds))
    ds = copy.deepcopy(healthy[2][1])
    ds.SOPInstanceUID, ds.InstanceNumber = uid(), 92
    latin1 = os.fsencode(str(root)) + b"/vol1/J\xe9r\xf4me_\xc4rzte.dcm"  # Latin-1 bytes, not UTF-8
    with open(latin1, "wb") as f:
        f.write(part10_bytes(ds))
    man.add("vol1/J\\xe9r\\xf4me_\\xc4rzte.dcm")
    healthy.append(("vol1/J\\xe9r\\xf4me_\\xc4rzte.dcm", ds))

    if defects:
        _plant_defects(root, man, healthy, uid, rng, write)
    if conflicts:
        _plant_conflicts(root, man, healthy, uid, rng, write)
    if specials:
        _plant_specials(root, man)
    return man


def _plant_defects(root: Path, man: Manifest, healthy: list[tuple[str, Dataset]], uid: _UIDs,
                   rng: np.random.Generator, write: Callable[[str, bytes], Path]) -> None:
    w = write  # type: ignore[assignment]

    # Damaged files belong to a patient and study of their own, so that they
    # do not take part in the ID conflicts planted elsewhere.
    study, series = uid(), uid()

    def fresh(i: int, rows: int = 64, cols: int = 64) -> Dataset:
        return make_dataset(
            uid, rng, patient_id="PID08000", patient_name="DAMAGED^DORA", birth_date="19700707",
            study_uid=study, series_uid=series, accession="ACC80000", study_date="20010101",
            instance_number=100 + i, rows=rows, columns=cols,
        )

    full = part10_bytes(fresh(0))
    w("bad/truncated_pixels.dcm", full[: len(full) - 3000])
    man.add("bad/truncated_pixels.dcm", "corrupt", "truncated", "corrupt_file")
    w("bad/truncated_header.dcm", part10_bytes(fresh(1))[:300])
    man.add("bad/truncated_header.dcm", "corrupt", "truncated", "corrupt_file")
    w("bad/zero_length.dcm", b"")
    man.add("bad/zero_length.dcm", "corrupt", "empty", "corrupt_file")
    # A lost block: 4096 zero bytes on a 4096 boundary in the middle of pixel data.
    big = bytearray(part10_bytes(fresh(2, 128, 128)))
    big[8192 : 8192 + 4096] = bytes(4096)
    w("bad/lost_block.dcm", bytes(big))
    man.add("bad/lost_block.dcm", "suspect", "zero_block", "corrupt_file")
    # The same, but the lost block is the file's last, partial one.
    tail = bytearray(part10_bytes(fresh(3, 100, 100)))
    cut = (len(tail) // 4096) * 4096
    tail[cut - 4096 :] = bytes(len(tail) - cut + 4096)
    w("bad/lost_tail_block.dcm", bytes(tail))
    man.add("bad/lost_tail_block.dcm", "suspect", "zero_block", "corrupt_file")
    # A natural zero run (black area) that does not start on a block boundary: ok.
    ds = fresh(4, 128, 128)
    px = bytearray(ds.PixelData)
    px[5000:17000] = bytes(12000)
    ds.PixelData = bytes(px)
    w("vol1/black_area.dcm", part10_bytes(ds))
    man.add("vol1/black_area.dcm")
    w("bad/garbage.dcm", bytes(rng.integers(0, 256, 5000, dtype=np.uint8)))
    man.add("bad/garbage.dcm", "not_dicom")
    w("bad/report.dcm", b"This is a text report, not an image.\n" * 20)
    man.add("bad/report.dcm", "not_dicom")
    ds = fresh(5)
    w("bad/meta_then_garbage.dcm", meta_bytes(ds, ExplicitVRLittleEndian)
      + bytes(rng.integers(0, 256, 3000, dtype=np.uint8)))
    man.add("bad/meta_then_garbage.dcm", "corrupt", "unparseable", "corrupt_file")
    ds = fresh(6)
    w("bad/implicit_under_explicit.dcm", meta_bytes(ds, ExplicitVRLittleEndian) + raw_bytes(ds, ImplicitVRLittleEndian))
    man.add("bad/implicit_under_explicit.dcm", "corrupt", "encoding_mismatch", "corrupt_file")
    ds = fresh(7)
    w("bad/big_under_little.dcm", meta_bytes(ds, ExplicitVRLittleEndian) + raw_bytes(ds, ExplicitVRBigEndian))
    man.add("bad/big_under_little.dcm", "corrupt", "encoding_mismatch", "corrupt_file")
    ds = fresh(8)
    del ds.SOPInstanceUID
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = UID(uid())
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    buf = BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    w("bad/no_sop_uid.dcm", buf.getvalue())
    man.add("bad/no_sop_uid.dcm", "corrupt", "missing_sop_instance_uid", "corrupt_file",
            "missing_required_attribute", "meta_sop_instance_mismatch")
    for rel, reason in list(man.expected.items()):
        if rel.startswith("bad/") and reason.status in ("corrupt", "suspect"):
            reason.checks.add("corrupt_file")
    # A declared length that cannot be right: PixelData says 4 GB - 2.
    ok = bytearray(part10_bytes(fresh(9)))
    pos = ok.rfind(b"\xe0\x7f\x10\x00OW")
    ok[pos + 8 : pos + 12] = (0xFFFFFFFE).to_bytes(4, "little")
    w("bad/length_overrun.dcm", bytes(ok))
    man.add("bad/length_overrun.dcm", "corrupt", "length_overrun", "corrupt_file")


def _plant_conflicts(root: Path, man: Manifest, healthy: list[tuple[str, Dataset]], uid: _UIDs,
                     rng: np.random.Generator, write: Callable[[str, bytes], Path]) -> None:
    """One case of every duplicate and ID conflict the checks must find."""
    w = write  # type: ignore[assignment]

    members = list(healthy)  # every sound file, for the group checks
    marks: list[tuple[object, str]] = []

    def mark(pred: object, check: str) -> None:
        marks.append((pred, check))  # applied at the end, when every member is known

    def put(rel: str, ds: Dataset, data: bytes, *checks: str) -> None:
        w(rel, data)
        man.add(rel, "ok", None, *checks)
        members.append((rel, ds))

    def new_instance(src: Dataset, **changes: object) -> Dataset:
        ds = copy.deepcopy(src)
        ds.SOPInstanceUID = uid()
        ds.InstanceNumber = 500 + uid.n
        for k, v in changes.items():
            setattr(ds, k, v)
        return ds

    # duplicate_identical: the same file restored twice
    rel0, ds0 = healthy[3]
    put("vol2/dup_identical.dcm", ds0, (root / rel0).read_bytes(), "duplicate_identical")
    man.expected[rel0].checks.add("duplicate_identical")
    # duplicate_reencoded: the same object, once Part 10 explicit little endian, once big endian
    rel1, ds1 = healthy[4]
    put("vol2/dup_reencoded_be.dcm", ds1, part10_bytes(copy.deepcopy(ds1), ExplicitVRBigEndian), "duplicate_reencoded")
    man.expected[rel1].checks.add("duplicate_reencoded")
    # duplicate_conflict: same SOPInstanceUID, different content
    rel2, ds2 = healthy[5]
    c = copy.deepcopy(ds2)
    c.InstitutionName = "Other Hospital"
    put("vol2/dup_conflict.dcm", c, part10_bytes(c, ExplicitVRLittleEndian), "duplicate_conflict")
    man.expected[rel2].checks.add("duplicate_conflict")
    # corrupt copy of an instance that has an intact copy: recoverable
    rel3, ds3 = healthy[7]
    data = (root / rel3).read_bytes()
    w("vol2/truncated_copy.dcm", data[: len(data) - 1000])
    man.add("vol2/truncated_copy.dcm", "corrupt", "truncated", "corrupt_file")

    p1, p2, p3, p3b = healthy[0][1], healthy[12][1], healthy[24][1], healthy[30][1]  # patients 2 and 3 (p3b: 3's second study)
    assert len({p2.PatientID, p3.PatientID}) == 2 and p3b.StudyInstanceUID != p3.StudyInstanceUID
    # study_uid_multiple_patients: another patient's image filed under patient 3's second study
    ds = new_instance(p3b, PatientID="PID09001", PatientName="ROE^RICHARD", PatientBirthDate="19800101",
                      SeriesInstanceUID=uid(), AccessionNumber="ACC90001")
    put("vol2/study_other_patient.dcm", ds, part10_bytes(ds), "study_uid_multiple_patients")
    mark(lambda d: d.StudyInstanceUID == p3b.StudyInstanceUID, "study_uid_multiple_patients")
    # series_uid_multiple_studies: patient 2's series reused in a new study of the same patient
    ds = new_instance(p2, StudyInstanceUID=uid(), AccessionNumber="ACC90002")
    put("vol2/series_other_study.dcm", ds, part10_bytes(ds), "series_uid_multiple_studies")
    mark(lambda d: d.SeriesInstanceUID == p2.SeriesInstanceUID, "series_uid_multiple_studies")
    # accession_multiple_patients: patient 3's accession number on another patient's study
    ds = new_instance(p3, PatientID="PID09002", PatientName="POE^EDGAR", PatientBirthDate="19090119",
                      StudyInstanceUID=uid(), SeriesInstanceUID=uid())
    put("vol2/accession_other_patient.dcm", ds, part10_bytes(ds), "accession_multiple_patients")
    mark(lambda d: d.AccessionNumber == p3.AccessionNumber, "accession_multiple_patients")
    # patient_id_inconsistent_demographics: patient 2's ID with another name and birth date
    ds = new_instance(p2, PatientName="DOE^JOHNNY", PatientBirthDate="19610203", StudyInstanceUID=uid(),
                      SeriesInstanceUID=uid(), AccessionNumber="ACC90003")
    put("vol2/patient_other_name.dcm", ds, part10_bytes(ds), "patient_id_inconsistent_demographics")
    mark(lambda d: d.PatientID == p2.PatientID, "patient_id_inconsistent_demographics")
    # ... while case, whitespace and a trailing ^ are not a conflict (patient 1)
    ds = new_instance(p1, PatientName=str(p1.PatientName).lower() + " ^")
    put("vol2/patient_name_case.dcm", ds, part10_bytes(ds))
    # invalid_uid: a component with a leading zero
    ds = new_instance(p1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid UID we plant on purpose
        ds.SOPInstanceUID = ROOT_UID + ".05.1"
        data = part10_bytes(ds)
    put("vol2/invalid_uid.dcm", ds, data, "invalid_uid")
    # missing_required_attribute: empty PatientID, in a study of its own
    ds = new_instance(p1, PatientID="", PatientName="NOID^NORA", StudyInstanceUID=uid(),
                      SeriesInstanceUID=uid(), AccessionNumber="ACC90004")
    put("vol2/empty_patient_id.dcm", ds, part10_bytes(ds), "missing_required_attribute")
    # private_sop_class: a vendor-private class (warning) and an enhanced one (info)
    ds = new_instance(p1, SOPClassUID=PRIVATE_SOP_CLASS)
    put("vol2/private_class.dcm", ds, part10_bytes(ds), "private_sop_class")
    ds = new_instance(p1, SOPClassUID="1.2.840.10008.5.1.4.1.1.2.1")  # Enhanced CT Image Storage
    put("vol2/enhanced_class.dcm", ds, part10_bytes(ds), "private_sop_class")
    # meta_sop_instance_mismatch: the file meta names another instance
    ds = new_instance(p1)
    data = part10_bytes(ds)
    other = uid()
    other = other + "9" * (len(ds.SOPInstanceUID) - len(other)) if len(other) < len(ds.SOPInstanceUID) else other[: len(ds.SOPInstanceUID)]
    data = data.replace(ds.SOPInstanceUID.encode(), other.encode(), 1)  # the first occurrence is in the meta
    put("vol2/meta_mismatch.dcm", ds, data, "meta_sop_instance_mismatch")
    for pred, check in marks:
        for rel, mds in members:
            if pred(mds):  # type: ignore[operator]
                man.expected[rel].checks.add(check)


def _plant_specials(root: Path, man: Manifest) -> None:
    sp = root / "special"
    sp.mkdir(parents=True, exist_ok=True)
    os.mkfifo(sp / "a_fifo.dcm")
    man.specials["special/a_fifo.dcm"] = Planted("skipped", "fifo")
    os.symlink("loop_b", sp / "loop_a")
    os.symlink("loop_a", sp / "loop_b")
    man.specials["special/loop_a"] = Planted("skipped", "symlink")
    man.specials["special/loop_b"] = Planted("skipped", "symlink")
    os.symlink("/nonexistent/target.dcm", sp / "dangling.dcm")
    man.specials["special/dangling.dcm"] = Planted("skipped", "symlink")
    os.symlink("..", sp / "up")  # a link back up the tree: following it would loop
    man.specials["special/up"] = Planted("skipped", "symlink")
    import socket

    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(sp / "a.sock"))
        man.specials["special/a.sock"] = Planted("skipped", "socket")
    except OSError:
        pass
    finally:
        s.close()


def copy_pydicom_samples(dest: Path) -> list[Path]:
    """Copy pydicom's bundled test files (never downloaded) under ``dest``."""
    import pydicom

    src = Path(pydicom.__file__).parent / "data" / "test_files"
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return sorted(p for p in dest.rglob("*") if p.is_file())


def make_corpus(root: Path, count: int, size: int, *, frames: int = 1, seed: int = 1) -> list[Path]:
    """``count`` healthy Part 10 files of about ``size`` bytes each (benchmarks)."""
    root.mkdir(parents=True, exist_ok=True)
    pyrng = random.Random(seed)
    rng = np.random.default_rng(seed)
    uid = _UIDs(pyrng)
    side = max(8, int(((size / 2) / frames) ** 0.5))
    ds = make_dataset(uid, rng, patient_id="BENCH", patient_name="BENCH^MARK", birth_date="19700101",
                      study_uid=uid(), series_uid=uid(), accession="B1", study_date="20200101",
                      rows=side, columns=side, frames=frames, sop_class=SecondaryCaptureImageStorage
                      if frames == 1 else CTImageStorage)
    out = []
    for i in range(count):
        ds.SOPInstanceUID = uid()
        ds.InstanceNumber = i + 1
        if i % 100 == 0:
            ds.SeriesInstanceUID = uid()
        p = root / f"s{i // 1000:04d}" / f"IM{i:06d}.dcm"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(part10_bytes(ds))
        out.append(p)
    return out


def _main(argv: list[str] | None = None) -> int:
    """``python -m pacscopy.testing.synth DIR``: write the demo archive (synthetic + pydicom's samples)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m pacscopy.testing.synth", description=_main.__doc__)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--no-pydicom", action="store_true", help="only the synthetic archive")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    man = make_archive(args.dest / "synthetic", seed=args.seed)
    n = len(man.expected) + len(man.specials)
    if not args.no_pydicom:
        n += len(copy_pydicom_samples(args.dest / "pydicom_samples"))
    print(f"wrote {n} entries under {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
