"""The indexed read of Part 10 bytes (engine/dicom/part10_index.py) gives what pydicom gives.

Element by element (value and type) on every file of the shared vendor corpus and on the
synthetic cohort; volume by volume (voxels, dtype, affine, metadata) or refusal by refusal (the
same message) on the corpus series and on every refusal case of test_dicom.py written to bytes
in both little-endian encodings. Whatever the index does not handle falls back to pydicom.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from engine.dicom import assemble_volume, datasets_from_bytes, group_by_series, load_dataset_files
from engine.dicom.part10_index import IndexedDataset, index_part10
from engine.dicom.reader import READ_ERRORS
from engine.errors import DicomError
from engine.modelling.synth import generate_cohort
from tests.engine.test_dicom import SAGITTAL, make_enhanced, make_series

Outcome = tuple[str, Any]


def _pydicom_or_none(blob: bytes) -> Dataset | None:
    try:
        return pydicom.dcmread(BytesIO(blob))
    except READ_ERRORS:
        return None


def _value(ds: Any, keyword: str) -> Any:
    try:
        return ds.get(keyword)
    except READ_ERRORS as exc:  # a malformed element fails on access: it must fail alike
        return ("error", type(exc).__name__, str(exc))


def assert_same_elements(indexed: IndexedDataset, full: Dataset, name: str) -> None:
    for ours, theirs in ((indexed, full), (indexed.file_meta, full.file_meta)):
        assert set(ours._index) == {int(tag) for tag in theirs.keys()}, name  # noqa: SLF001
        for element in theirs:
            if not element.keyword:
                continue
            expected, got = _value(theirs, element.keyword), _value(ours, element.keyword)
            assert type(got) is type(expected), (name, element.keyword)
            assert got == expected, (name, element.keyword)
            assert (element.keyword in ours) is True


def _outcome(build: Callable[[], Any]) -> Outcome:
    try:
        volume = build()
    except DicomError as exc:
        return ("refused", exc.message)
    return ("volume", volume)


def assert_same_outcome(indexed: Outcome, full: Outcome, name: str) -> None:
    assert indexed[0] == full[0], (name, indexed, full)
    if indexed[0] == "refused":
        assert indexed[1] == full[1], name
        return
    ours, theirs = indexed[1], full[1]
    assert ours.array.dtype == theirs.array.dtype, name
    np.testing.assert_array_equal(ours.array, theirs.array, err_msg=name)
    np.testing.assert_array_equal(ours.affine, theirs.affine, err_msg=name)
    assert ours.metadata == theirs.metadata, name


def _series_outcomes(paths: list[Path]) -> dict[str, tuple[Outcome, Outcome]]:
    """Each series among ``paths``: assembled from the indexed read and from pydicom alone."""
    indexed = group_by_series(load_dataset_files(paths))
    plain = group_by_series([ds for p in paths if (ds := _pydicom_or_none(p.read_bytes())) is not None])
    assert indexed.keys() == plain.keys()
    return {uid: (_outcome(lambda s=series: assemble_volume(s)),
                  _outcome(lambda s=plain[uid]: assemble_volume(s))) for uid, series in indexed.items()}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_every_corpus_file_reads_the_same(shared_dir: Path) -> None:
    indexed_count = declined = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's warnings on odd vendor values
        for path in _files(shared_dir / "dicom-corpus"):
            blob = path.read_bytes()
            full, indexed = _pydicom_or_none(blob), index_part10(blob)
            if full is None:
                assert indexed is None, f"{path}: pydicom refuses it, the index must too"
                continue
            if indexed is None:
                declined += 1
                syntax = full.file_meta.TransferSyntaxUID
                assert syntax not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian), path
                continue
            assert_same_elements(indexed, full, str(path))
            indexed_count += 1
    assert indexed_count >= 200 and declined >= 10, (indexed_count, declined)  # compressed ones


def test_every_corpus_series_assembles_or_is_refused_the_same(shared_dir: Path) -> None:
    corpus = shared_dir / "dicom-corpus"
    folders = sorted({p.parent for p in _files(corpus) if p.suffix not in (".md", ".gz", ".json")}
                     - {corpus})
    compared = refused = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for folder in folders:
            for uid, (ours, theirs) in _series_outcomes(_files(folder)).items():
                assert_same_outcome(ours, theirs, f"{folder.relative_to(corpus)} {uid}")
                compared += 1
                refused += ours[0] == "refused"
    assert compared >= 15 and refused >= 3, (compared, refused)  # failing/ and the localizers


def test_the_synthetic_study_reads_and_assembles_the_same(tmp_path: Path) -> None:
    manifest = json.loads(generate_cohort(n_patients=1, seed=11, out_dir=tmp_path, size="test",
                                          n_visits=3).read_text())
    for series in manifest["patients"][0]["visits"][0]["series"]:
        files = sorted((tmp_path / series["dir"]).glob("*.dcm"))
        for path in files[:3]:
            blob = path.read_bytes()
            indexed = index_part10(blob)
            assert indexed is not None, path
            assert_same_elements(indexed, pydicom.dcmread(BytesIO(blob)), str(path))
        (ours, theirs), = _series_outcomes(files).values()
        assert ours[0] == "volume"
        assert_same_outcome(ours, theirs, series["dir"])


def _mutated(change: Callable[[list[Any]], list[Any] | None], **extra: Any) -> list[Any]:
    series = make_series(**extra)
    return change(series) or series


def _set(index: int, **values: Any) -> Callable[[list[Any]], None]:
    def change(series: list[Any]) -> None:
        for keyword, value in values.items():
            setattr(series[index], keyword, value)
    return change


def _delete(index: int, keyword: str) -> Callable[[list[Any]], None]:
    return lambda series: delattr(series[index], keyword)


def _float_pixels(series: list[Any]) -> None:
    for ds in series:
        values = np.full((ds.Rows, ds.Columns), 1.5, dtype="<f4")
        values[0, 0] = np.nan
        del ds.PixelData
        ds.BitsAllocated, ds.FloatPixelData = 32, values.tobytes()


CASES: dict[str, Callable[[], list[Any]]] = {
    "valid": lambda: make_series(),
    "rescaled": lambda: make_series(RescaleSlope="0.5", RescaleIntercept="-3.25"),
    "shifted": lambda: make_series(RescaleSlope="1", RescaleIntercept="-1024"),
    "zero slope": lambda: make_series(RescaleSlope="0"),
    "missing slice": lambda: make_series(steps_mm=[2.5, 2.5, 5.0, 2.5, 2.5]),
    "inconsistent spacing": lambda: make_series(steps_mm=[2.5, 2.5, 3.4, 2.5, 2.5]),
    "tilted": lambda: make_series(shear=(0.0, 0.5, 0.0)),
    "duplicated": lambda: make_series(steps_mm=[2.5, 0.0, 2.5, 2.5, 2.5]),
    "mixed orientations": lambda: _mutated(_set(2, ImageOrientationPatient=[str(v) for v in SAGITTAL])),
    "different sizes": lambda: _mutated(_set(1, Rows=6)),
    "too few": lambda: make_series()[:2],
    "zero-length pixels": lambda: _mutated(_set(3, PixelData=b"")),
    "no pixel data": lambda: _mutated(_delete(1, "PixelData")),
    "no position": lambda: _mutated(_delete(4, "ImagePositionPatient")),
    "multi-frame among single": lambda: _mutated(_set(0, NumberOfFrames=2)),
    "colour": lambda: _mutated(_set(2, SamplesPerPixel=3)),
    "two values in PixelSpacing position": lambda: _mutated(_set(1, ImagePositionPatient=["1", "2"])),
    "non-finite float pixels": lambda: _mutated(_float_pixels),
    "two series": lambda: [*make_series()[:3], *make_series()[3:]],
    "enhanced": lambda: [make_enhanced(make_series(), frame_order=range(6))],
    "enhanced with two stacks": lambda: [make_enhanced(make_series(), frame_order=[0, 1, 2, 0, 1, 2])],
}


def _blobs(series: Iterable[Any], syntax: str) -> list[bytes]:
    blobs = []
    for ds in series:
        ds.file_meta.TransferSyntaxUID = syntax
        out = BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(out, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True,
                       enforce_file_format=True)
        blobs.append(out.getvalue())
    return blobs


def _damage(blobs: list[bytes], old: bytes, new: bytes) -> list[bytes]:
    """``old`` replaced by ``new`` (same length) in the third instance: pydicom could not write it."""
    assert len(old) == len(new) and old in blobs[2]
    return [*blobs[:2], blobs[2].replace(old, new), *blobs[3:]]


#: values pydicom refuses to write, put into the bytes afterwards
DAMAGE: dict[str, Callable[[list[bytes]], list[bytes]]] = {
    "malformed DS": lambda blobs: _damage(blobs, b"0.9\\1.1", b"0.9\\1.x"),
    "malformed IS": lambda blobs: _damage(blobs, b"\x20\x00\x13\x00IS\x02\x003 ",  # InstanceNumber
                                          b"\x20\x00\x13\x00IS\x02\x00x "),
    # Rows declared 1 byte long: the walk then meets no valid element and leaves it to pydicom
    "malformed US": lambda blobs: _damage(blobs, b"\x28\x00\x10\x00US\x02\x00\x07\x00",
                                          b"\x28\x00\x10\x00US\x01\x00\x07\x00"),
}


SYNTAXES = pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
                                   ids=["explicit", "implicit"])


@SYNTAXES
@pytest.mark.parametrize("case", sorted(CASES))
def test_bytes_give_the_same_volume_or_the_same_refusal(case: str, syntax: str) -> None:
    blobs = _blobs(CASES[case](), syntax)
    assert all(index_part10(blob) is not None for blob in blobs)
    _assert_same_from_bytes(blobs, case)


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_bytes_give_the_same_refusal(case: str) -> None:
    outcome = _assert_same_from_bytes(DAMAGE[case](_blobs(make_series(), ExplicitVRLittleEndian)), case)
    # pydicom converts an IS it cannot parse with another VR (text); slices sort by position
    assert outcome[0] == ("volume" if case == "malformed IS" else "refused"), outcome


def _assert_same_from_bytes(blobs: list[bytes], case: str) -> Outcome:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = _outcome(lambda: assemble_volume(datasets_from_bytes(blobs)))
        theirs = _outcome(lambda: assemble_volume([pydicom.dcmread(BytesIO(b)) for b in blobs]))
    assert_same_outcome(ours, theirs, case)
    return ours


def _with_nested_sequences(syntax: str, *, undefined: bool) -> bytes:
    ds = make_series()[0]
    inner = Dataset()
    inner.CodeValue, inner.CodeMeaning = "T1", "T1 weighted"
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.4.5"
    item.PurposeOfReferenceCodeSequence = DicomSequence([inner])
    ds.ReferencedImageSequence = DicomSequence([item, Dataset()])
    if undefined:
        for element in (ds["ReferencedImageSequence"], item["PurposeOfReferenceCodeSequence"]):
            element.is_undefined_length = True
        for value in (item, inner, ds.ReferencedImageSequence[1]):
            value.is_undefined_length_sequence_item = True
    (blob,) = _blobs([ds], syntax)
    return blob


@pytest.mark.parametrize("undefined", [True, False], ids=["undefined-length", "defined-length"])
@SYNTAXES
def test_sequences_are_skipped_and_read_by_pydicom(syntax: str, undefined: bool) -> None:
    blob = _with_nested_sequences(syntax, undefined=undefined)
    indexed, full = index_part10(blob), pydicom.dcmread(BytesIO(blob))
    assert indexed is not None
    assert_same_elements(indexed, full, "nested sequences")
    code = indexed.ReferencedImageSequence[0].PurposeOfReferenceCodeSequence[0]
    assert code.CodeMeaning == "T1 weighted"


def test_cut_or_damaged_bytes_are_left_to_pydicom() -> None:
    blob = _with_nested_sequences(ExplicitVRLittleEndian, undefined=True)
    checked = 0
    for cut in range(0, len(blob) - 1, 3):
        for damaged in (blob[:cut], blob[:cut] + b"\xff\xff\xff\xff" + blob[cut + 4:]):
            indexed = index_part10(damaged)
            if indexed is None:
                continue  # pydicom reads it, or refuses it, as before
            full = _pydicom_or_none(damaged)
            assert full is not None, cut
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert_same_elements(indexed, full, f"cut at {cut}")
            checked += 1
    assert checked >= 1  # cuts at element boundaries of the top level are valid instances
    assert index_part10(b"hello") is None
    assert index_part10(blob.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.2\x00")) is None
