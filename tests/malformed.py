"""Malformed DICOM for the reliability sweep: one mutated series per case, written with pydicom.

Each :class:`MutationCase` is one study (its own StudyInstanceUID and PatientID) holding one
series built by :func:`tests.dicom_factory.write_series` and then broken in one way (``kind``).
Some cases add a good companion series to the same study, so a study can be ingested while
its broken series is quarantined. The series description carries the case id
(``"AX T1 POST GD mut0007"``) so a quarantine reason can be traced to the case.

Kinds: truncation, a transfer syntax UID that does not match the data, missing geometry tags,
huge Rows/Columns, zero-length or absent PixelData, non-image SOP classes (Basic Text SR and
Grayscale Softcopy Presentation State), duplicate SOPInstanceUIDs with different content, odd
SpecificCharacterSet values, NaN/inf in geometry, mixed orientations in one series, bad numeric
strings, inconsistent Rows/Columns, impossible pixel descriptions, bytes that are not DICOM.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import (
    BasicTextSRStorage,
    ExplicitVRBigEndian,
    GrayscaleSoftcopyPresentationStateStorage,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from tests.dicom_factory import write_series

SERIES_SHAPE = (8, 8, 4)  # columns, rows, slices: tiny on purpose
Blobs = list[bytes]


@dataclass(frozen=True, slots=True)
class MutationCase:
    case_id: str  # "mut0007"
    kind: str
    study_uid: str
    series_uid: str  # the mutated series
    description: str  # SeriesDescription of the mutated series (names the case)
    files: tuple[Path, ...]  # every file of the study, mutated series first
    companion_series_uid: str = ""  # a good T1 series in the same study, when present
    note: str = ""  # what exactly was broken


@dataclass(slots=True)
class _Series:
    datasets: list[Dataset]
    note: str = ""
    extra: list[bytes] = field(default_factory=list)  # raw blobs written as they are
    reuse_uid: str = ""  # a SeriesInstanceUID that already belongs to another study


def _encode(ds: Dataset) -> bytes:
    """Write without validation: the point is to keep what is inconsistent."""
    buf = BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=False)
    return buf.getvalue()


def _raw(ds: Dataset, keyword: str, vr: str, value: bytes) -> None:
    """Put bytes in an element as they are (pydicom would refuse to convert them)."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    value = value + b" " if len(value) % 2 else value
    ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _pick(rng: random.Random, datasets: list[Dataset]) -> list[Dataset]:
    """One slice or all of them."""
    return list(datasets) if rng.random() < 0.5 else [rng.choice(datasets)]


# --- the mutations: each breaks a series of good datasets in place -------------------------------

def _truncation(s: _Series, rng: random.Random) -> None:
    victims = _pick(rng, s.datasets)
    blobs = []
    for ds in s.datasets:
        blob = _encode(ds)
        if any(ds is v for v in victims):
            cut = rng.choice([rng.randint(132, 300), rng.randint(300, len(blob) - 1), len(blob) - 1])
            blob = blob[:cut]
        blobs.append(blob)
    s.datasets, s.extra = [], blobs
    s.note = f"{len(victims)} file(s) truncated"


def _wrong_transfer_syntax(s: _Series, rng: random.Random) -> None:
    uid = rng.choice([JPEGBaseline8Bit, JPEG2000Lossless, JPEGLSLossless, RLELossless,
                      ExplicitVRBigEndian, ImplicitVRLittleEndian, "1.2.3.4.5.6.7"])
    blobs = [_retag(ds, str(uid)) for ds in s.datasets]
    s.datasets, s.extra = [], blobs
    s.note = f"TransferSyntaxUID says {uid} but the data is explicit VR little endian, native"


def _retag(ds: Dataset, uid: str) -> bytes:
    """Data element bytes encoded as explicit little endian under another TransferSyntaxUID."""
    body = BytesIO()
    plain = Dataset()
    plain.update(ds)
    pydicom.dcmwrite(body, plain, implicit_vr=False, little_endian=True, enforce_file_format=False)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    meta.TransferSyntaxUID = uid
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    head = BytesIO()
    head.write(b"\0" * 128 + b"DICM")
    pydicom.filewriter.write_file_meta_info(head, meta, enforce_standard=True)
    return head.getvalue() + body.getvalue()


def _missing_geometry(s: _Series, rng: random.Random) -> None:
    names = rng.choice([["ImagePositionPatient"], ["ImageOrientationPatient"], ["PixelSpacing"],
                        ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"]])
    for ds in _pick(rng, s.datasets):
        for name in names:
            delattr(ds, name)
    s.note = f"removed {', '.join(names)}"


def _huge_dimensions(s: _Series, rng: random.Random) -> None:
    rows, cols = rng.choice([(65535, 65535), (40000, 40000), (65535, 1), (1, 65535)])
    for ds in s.datasets:
        ds.Rows, ds.Columns = rows, cols
    if rng.random() < 0.3:
        s.datasets[0].NumberOfFrames = 2**31 - 1
    s.note = f"Rows x Columns = {rows} x {cols} over 128 bytes of pixels"


def _zero_length_pixels(s: _Series, rng: random.Random) -> None:
    for ds in _pick(rng, s.datasets):
        ds.PixelData = b""
    s.note = "zero-length PixelData"


def _no_pixels(s: _Series, rng: random.Random) -> None:
    for ds in _pick(rng, s.datasets):
        del ds.PixelData
    s.note = "PixelData element removed"


def _non_image_sop(s: _Series, rng: random.Random) -> None:
    modality = rng.choice(["native", "MR"])  # an SR/PR that claims to be MR is nastier
    sop = rng.choice([BasicTextSRStorage, GrayscaleSoftcopyPresentationStateStorage])
    out = []
    for ds in s.datasets:
        for name in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
                     "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation",
                     "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            if name in ds:
                delattr(ds, name)
        ds.SOPClassUID = sop
        ds.file_meta.MediaStorageSOPClassUID = sop
        if sop == BasicTextSRStorage:
            ds.Modality = "SR" if modality == "native" else "MR"
            ds.ValueType = "CONTAINER"
            ds.ContinuityOfContent = "SEPARATE"
            concept = Dataset()
            concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121144", "DCM", "Document Title"
            ds.ConceptNameCodeSequence = [concept]
            item = Dataset()
            item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", "No change."
            ds.ContentSequence = [item]
            ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
        else:
            ds.Modality = "PR" if modality == "native" else "MR"
            ds.PresentationCreationDate = ds.StudyDate
            ds.PresentationCreationTime = "120000"
            ds.ContentLabel = "GSPS"
        out.append(ds)
    s.datasets = out
    s.note = f"{sop.name} instances, Modality {out[0].Modality}"


def _duplicate_sop_uids(s: _Series, rng: random.Random) -> None:
    k = rng.randrange(1, len(s.datasets))
    s.datasets[k].SOPInstanceUID = s.datasets[k - 1].SOPInstanceUID
    s.datasets[k].file_meta.MediaStorageSOPInstanceUID = s.datasets[k - 1].SOPInstanceUID
    s.note = f"slice {k + 1} reuses the SOPInstanceUID of slice {k} (different pixels and position)"


def _reused_series_uid(s: _Series, rng: random.Random) -> None:
    if not s.reuse_uid:
        s.note = "no series UID to reuse: left unchanged"
        return
    for ds in s.datasets:
        ds.SeriesInstanceUID = s.reuse_uid
    s.note = f"SeriesInstanceUID {s.reuse_uid} already belongs to another study"


def _odd_character_set(s: _Series, rng: random.Random) -> None:
    charset, text = rng.choice([
        ("ISO_IR 999", "Müller^Jörg".encode("latin-1")),
        ("ISO 2022 IR 87", "\u7530\u4e2d".encode("iso2022_jp")),
        ("GB18030", "\u5f20\u4e09".encode("gb18030")),
        ("ISO_IR 192", b"\xff\xfe\xfa invalid utf-8"),
        ("\\ISO 2022 IR 149", b"\x1b$)C\xc8\xab^\xb1\xe6"),
        ("ISO_IR 100\\ISO_IR 144", "\u0418\u0432\u0430\u043d".encode("iso8859_5")),
    ])
    for ds in s.datasets:
        ds.SpecificCharacterSet = charset
        ds.add_new(0x00100010, "PN", text)  # PatientName as raw bytes in that "charset"
        ds.add_new(0x0008103E, "LO", ds.SeriesDescription.encode("ascii") + b" " + text[:8])
    s.note = f"SpecificCharacterSet {charset!r} with raw name bytes"


def _non_finite_geometry(s: _Series, rng: random.Random) -> None:
    name, value = rng.choice([
        ("ImagePositionPatient", ["nan", "0", "0"]), ("ImagePositionPatient", ["inf", "-inf", "0"]),
        ("PixelSpacing", ["inf", "1"]), ("PixelSpacing", ["0", "0"]), ("PixelSpacing", ["-2", "2"]),
        ("ImageOrientationPatient", ["nan", "0", "0", "0", "1", "0"]),
        ("ImageOrientationPatient", ["0", "0", "0", "0", "0", "0"]),
        ("SliceThickness", ["nan"]),
    ])
    for ds in _pick(rng, s.datasets):
        _raw(ds, name, "DS", "\\".join(value).encode())
    shown = "\\".join(value)
    s.note = f"{name} = {shown}"


def _mixed_orientations(s: _Series, rng: random.Random) -> None:
    other = rng.choice([[0, 1, 0, 0, 0, -1], [1, 0, 0, 0, 0, -1], [0.98, 0.17, 0, -0.17, 0.98, 0]])
    for ds in s.datasets[len(s.datasets) // 2:]:
        ds.ImageOrientationPatient = other
    s.note = f"second half of the slices oriented {other}"


def _bad_numeric_strings(s: _Series, rng: random.Random) -> None:
    name = rng.choice(["RepetitionTime", "EchoTime", "SliceThickness", "RescaleSlope",
                       "RescaleIntercept", "InstanceNumber", "SeriesNumber"])
    vr = "IS" if name in ("InstanceNumber", "SeriesNumber") else "DS"
    for ds in _pick(rng, s.datasets):
        _raw(ds, name, vr, rng.choice([b"abc", b"1..2", b"--"] + ([b"1e999"] if vr == "DS" else [])))
    s.note = f"{name} is not a number"


def _overflowing_integer_string(s: _Series, rng: random.Random) -> None:
    for ds in _pick(rng, s.datasets):
        _raw(ds, "InstanceNumber", "IS", rng.choice([b"1e999", b"-1e400"]))
    s.note = "InstanceNumber overflows (an IS that reads as an infinite float)"


def _inconsistent_matrix(s: _Series, rng: random.Random) -> None:
    ds = rng.choice(s.datasets)
    ds.Rows, ds.Columns = SERIES_SHAPE[1] // 2, SERIES_SHAPE[0] * 2
    s.note = "one slice declares another Rows x Columns over the same bytes"


def _impossible_pixel_description(s: _Series, rng: random.Random) -> None:
    name, value = rng.choice([("BitsAllocated", 12), ("BitsAllocated", 0), ("BitsStored", 32),
                              ("SamplesPerPixel", 3), ("PixelRepresentation", 5),
                              ("PhotometricInterpretation", "YBR_FULL_422"), ("HighBit", 40)])
    for ds in _pick(rng, s.datasets):
        setattr(ds, name, value)
    s.note = f"{name} = {value}"


def _not_dicom(s: _Series, rng: random.Random) -> None:
    blobs = [_encode(ds) for ds in s.datasets]
    k = rng.randrange(len(blobs))
    junk = rng.choice([bytes(rng.getrandbits(8) for _ in range(512)), b"", b"\0" * 132,
                       b"\0" * 128 + b"DICM" + bytes(rng.getrandbits(8) for _ in range(64))])
    blobs[k] = junk
    s.datasets, s.extra = [], blobs
    s.note = f"file {k + 1} replaced by {len(junk)} bytes that are not DICOM"


MUTATIONS: dict[str, Callable[[_Series, random.Random], None]] = {
    "truncation": _truncation,
    "wrong_transfer_syntax": _wrong_transfer_syntax,
    "missing_geometry": _missing_geometry,
    "huge_dimensions": _huge_dimensions,
    "zero_length_pixels": _zero_length_pixels,
    "no_pixels": _no_pixels,
    "non_image_sop": _non_image_sop,
    "duplicate_sop_uids": _duplicate_sop_uids,
    "reused_series_uid": _reused_series_uid,
    "odd_character_set": _odd_character_set,
    "non_finite_geometry": _non_finite_geometry,
    "mixed_orientations": _mixed_orientations,
    "bad_numeric_strings": _bad_numeric_strings,
    "overflowing_integer_string": _overflowing_integer_string,
    "inconsistent_matrix": _inconsistent_matrix,
    "impossible_pixel_description": _impossible_pixel_description,
    "not_dicom": _not_dicom,
}


def write_case(folder: Path, *, index: int, kind: str, rng: random.Random,
               companion: bool = False, reuse_series_uid: str = "") -> MutationCase:
    """One study with one series broken by ``kind`` (and a good T1 series when ``companion``)."""
    case_id = f"mut{index:04d}"
    study_uid = generate_uid()
    when = date(2024, 1, 1)
    patient_id = f"MUT-{index:04d}"
    good = write_series(folder / "good", sequence="T1c", patient_id=patient_id, study_uid=study_uid,
                        study_date=when, shape=SERIES_SHAPE, seed=index)
    description = f"AX T1 POST GD {case_id}"
    series = _Series([pydicom.dcmread(p) for p in good], reuse_uid=reuse_series_uid)
    for ds in series.datasets:
        ds.SeriesDescription = description
        ds.ProtocolName = description
    MUTATIONS[kind](series, rng)
    blobs = series.extra or [_encode(ds) for ds in series.datasets]
    out = folder / "mutated"
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for k, blob in enumerate(blobs):
        path = out / f"IM{k:04d}.dcm"
        path.write_bytes(blob)
        files.append(path)
    for p in good:
        p.unlink()
    companion_uid = ""
    if companion:
        companion_uid = generate_uid()
        files += write_series(folder / "companion", sequence="T1", patient_id=patient_id,
                              study_uid=study_uid, study_date=when, shape=SERIES_SHAPE,
                              seed=index + 1, series_uid=companion_uid)
    return MutationCase(case_id=case_id, kind=kind, study_uid=study_uid,
                        series_uid=str(series.datasets[0].SeriesInstanceUID) if series.datasets
                        else _series_uid_of(blobs),
                        description=description, files=tuple(files),
                        companion_series_uid=companion_uid, note=series.note)


def _series_uid_of(blobs: Blobs) -> str:
    for blob in blobs:
        try:
            ds = pydicom.dcmread(BytesIO(blob), stop_before_pixels=True, force=True)
            return str(ds.SeriesInstanceUID)
        except Exception:  # noqa: BLE001, S112 - a blob this module broke on purpose
            continue
    return ""


def write_cases(folder: Path, *, n_files: int, seed: int = 0, reuse_series_uid: str = "",
                kinds: Sequence[str] | None = None) -> list[MutationCase]:
    """At least ``n_files`` mutated files: every kind in turn (then at random), 1/3 with a companion.

    ``reuse_series_uid``: the series UID the ``reused_series_uid`` kind copies (e.g. one of a
    good study stored before the sweep); by default the previous case's series UID.
    """
    rng = random.Random(seed)
    kinds = list(kinds or MUTATIONS)
    cases: list[MutationCase] = []
    written = 0
    index = 0
    while written < n_files:
        kind = kinds[index] if index < len(kinds) else rng.choice(kinds)
        reuse = reuse_series_uid or (cases[-1].series_uid if cases else "")
        case = write_case(folder / f"case{index:04d}", index=index, kind=kind, rng=rng,
                          companion=index % 3 == 2, reuse_series_uid=reuse)
        cases.append(case)
        written += sum(1 for f in case.files if f.parent.name == "mutated")
        index += 1
    return cases


__all__ = ["MUTATIONS", "SERIES_SHAPE", "MutationCase", "write_case", "write_cases"]
