"""DICOM -> Volume on small series written here with pydicom (known geometry, known refusals)."""

from __future__ import annotations

import copy
import importlib.util
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
    generate_uid,
)

from engine.dicom import (
    assemble_volume,
    datasets_from_bytes,
    group_by_series,
    load_dataset_files,
    read_nifti,
    read_series_dir,
    read_study_dir,
    write_nifti,
)
from engine.errors import DicomError, GlioWatchError, InvalidSeriesError
from flows.cli import main

ROWS, COLUMNS, SLICES = 7, 8, 6  # rows != columns so a transposed array cannot pass
ROW_SPACING_MM, COLUMN_SPACING_MM, STEP_MM = 0.9, 1.1, 2.5
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
PHI = ("Doe^Jane", "SECRET-ID-0042", "19700101")


def oblique(degrees: float = 20.0) -> tuple[float, ...]:
    """Axial rotated about L and then about S: no axis-aligned shortcut can pass."""
    a, b = math.radians(degrees), math.radians(degrees / 2)
    rot = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    rot = np.array([[math.cos(b), -math.sin(b), 0], [math.sin(b), math.cos(b), 0], [0, 0, 1]]) @ rot
    return tuple(float(f"{v:.6f}") for v in (*rot[:, 0], *rot[:, 1]))


def make_slice(
    *,
    position: Sequence[float],
    orientation: Sequence[float] = AXIAL,
    series_uid: str,
    instance: int,
    pixels: np.ndarray | None = None,
    description: str = "AX T1 POST GD",
    **extra: Any,
) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PHI
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", series_uid
    ds.Modality, ds.Manufacturer, ds.SeriesDescription = "MR", "ACME", description
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [f"{v:.5f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
    ds.PixelSpacing = [str(ROW_SPACING_MM), str(COLUMN_SPACING_MM)]
    ds.SliceThickness = str(STEP_MM)
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if pixels is None:  # value = 100 * slice + 10 * row + column: every voxel knows its origin
        pixels = 100 * (instance - 1) + 10 * np.arange(ROWS)[:, None] + np.arange(COLUMNS)[None]
    ds.PixelData = pixels.astype("<u2").tobytes()
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def make_series(
    *,
    orientation: Sequence[float] = AXIAL,
    origin: Sequence[float] = (-12.5, 30.25, 40.0),
    steps_mm: Sequence[float] | None = None,
    shear: Sequence[float] = (0.0, 0.0, 0.0),
    order: Sequence[int] | None = None,
    **extra: Any,
) -> list[FileDataset]:
    """A stack along the slice normal; ``steps_mm`` between consecutive slices."""
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, col)
    steps = [STEP_MM] * (SLICES - 1) if steps_mm is None else list(steps_mm)
    offsets = np.concatenate([[0.0], np.cumsum(steps)])
    uid = generate_uid()
    series = [
        make_slice(
            position=np.array(origin) + d * normal + k * np.array(shear),
            orientation=orientation,
            series_uid=uid,
            instance=k + 1,
            **extra,
        )
        for k, d in enumerate(offsets)
    ]
    return [series[i] for i in order] if order is not None else series


def expected_world_ras(volume_value: np.ndarray, series: Sequence[FileDataset]) -> np.ndarray:
    """World position of pixels by the DICOM definition (C.7.6.2.1.1), from each slice's header."""
    by_instance = {int(ds.InstanceNumber) - 1: ds for ds in series}
    points = []
    for value in volume_value.ravel():
        ds = by_instance[int(value) // 100]
        row_index, column_index = (int(value) // 10) % 10, int(value) % 10
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        lps = (
            np.array([float(v) for v in ds.ImagePositionPatient])
            + column_index * float(ds.PixelSpacing[1]) * iop[:3]
            + row_index * float(ds.PixelSpacing[0]) * iop[3:]
        )
        points.append(lps * np.array([-1.0, -1.0, 1.0]))
    return np.array(points)


def write_series(folder: Path, series: Sequence[FileDataset]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for ds in series:
        ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    return folder


@pytest.mark.parametrize(
    ("orientation", "plane"),
    [(AXIAL, "AX"), (SAGITTAL, "SAG"), (CORONAL, "COR"), (oblique(), "AX")],
    ids=["axial", "sagittal", "coronal", "oblique"],
)
def test_every_voxel_lands_where_dicom_puts_it(orientation: tuple[float, ...], plane: str) -> None:
    series = make_series(orientation=orientation, order=[3, 0, 5, 1, 4, 2])  # shuffled input
    volume = assemble_volume(series)
    assert volume.array.shape == (COLUMNS, ROWS, SLICES)
    i, j, k = np.indices(volume.array.shape).reshape(3, -1)
    world = (volume.affine @ np.stack([i, j, k, np.ones_like(i)]))[:3].T
    np.testing.assert_allclose(world, expected_world_ras(volume.array, series), atol=1e-4)
    assert volume.metadata["acquisition_plane"] == plane
    expected_spacing = (COLUMN_SPACING_MM, ROW_SPACING_MM, STEP_MM)
    assert volume.spacing_mm == pytest.approx(expected_spacing, abs=1e-5)


def test_lps_is_flipped_to_ras_and_the_array_is_column_row_slice() -> None:
    volume = assemble_volume(make_series(origin=(10.0, 20.0, 30.0)))
    expected = np.diag([-COLUMN_SPACING_MM, -ROW_SPACING_MM, STEP_MM, 1.0])
    expected[:3, 3] = (-10.0, -20.0, 30.0)  # LPS (10, 20, 30) is 10 mm Right-negative, ...
    np.testing.assert_allclose(volume.affine, expected, atol=1e-6)
    assert volume.array[3, 2, 4] == 100 * 4 + 10 * 2 + 3  # [column, row, slice]
    assert volume.array.dtype == np.uint16


def test_metadata_holds_technical_fields_only() -> None:
    volume = assemble_volume(make_series())
    meta = volume.metadata
    assert meta["instance_count"] == SLICES
    assert meta["series_description"] == "AX T1 POST GD"
    assert meta["transfer_syntax"] == "Explicit VR Little Endian"
    assert meta["shape"] == (COLUMNS, ROWS, SLICES)
    assert meta["header"]["Modality"] == "MR"
    text = repr(meta)
    assert not any(value in text for value in PHI)


def test_rescale_slope_and_intercept_are_applied() -> None:
    scaled = assemble_volume(make_series(RescaleSlope="0.5", RescaleIntercept="-3.25"))
    raw = assemble_volume(make_series())
    assert scaled.array.dtype == np.float32
    np.testing.assert_allclose(scaled.array, raw.array * 0.5 - 3.25)
    shifted = assemble_volume(make_series(RescaleSlope="1", RescaleIntercept="-1024"))
    assert shifted.array.dtype == np.int16
    np.testing.assert_array_equal(shifted.array, raw.array.astype(np.int32) - 1024)


def test_a_slope_that_overflows_float32_is_refused() -> None:
    """Integer voxels times a finite slope skip the NaN/infinity scan only while float32 cannot
    overflow; a slope beyond that is still scanned and refused."""
    refused(make_series(RescaleSlope="1e36"), r"voxel value\(s\) are not finite")
    assert np.isfinite(assemble_volume(make_series(RescaleSlope="1e33")).array).all()


def test_a_compressed_series_decodes_to_the_same_voxels() -> None:
    series = make_series()
    raw = assemble_volume(series)
    for ds in series:
        ds.compress(RLELossless)
    compressed = assemble_volume(series)
    np.testing.assert_array_equal(compressed.array, raw.array)
    assert compressed.metadata["transfer_syntax"] == "RLE Lossless"


def refused(series: Sequence[Any], match: str, **kwargs: Any) -> InvalidSeriesError:
    with pytest.raises(InvalidSeriesError, match=match) as info:
        assemble_volume(series, **kwargs)
    message = str(info.value)
    assert "AX T1 POST GD" in message and str(series[0].SeriesInstanceUID) in message
    return info.value


def test_missing_slice_is_refused() -> None:
    series = make_series(steps_mm=[2.5, 2.5, 5.0, 2.5, 2.5])
    refused(series, r"missing slices: a gap of 5.00 mm .* \(1 slice\(s\) missing\)")


def test_inconsistent_spacing_is_refused() -> None:
    refused(make_series(steps_mm=[2.5, 2.5, 3.4, 2.5, 2.5]), "inconsistent slice spacing: 3.40 mm")


def test_tilted_stack_is_refused() -> None:
    tan_12 = math.tan(math.radians(12.0)) * STEP_MM
    series = make_series(shear=(0.0, tan_12, 0.0))
    refused(series, "gantry tilt of 12.0 deg: slices are not orthogonal to the slice direction")


def test_duplicated_positions_are_refused() -> None:
    series = make_series(steps_mm=[2.5, 0.0, 2.5, 2.5, 2.5])
    refused(series, "6 images but only 5 distinct slice position")


def test_mixed_orientations_are_refused() -> None:
    series = make_series()
    series[2].ImageOrientationPatient = [str(v) for v in SAGITTAL]
    refused(series, r"mixed orientations: .*2 different ImageOrientationPatient values \(AX/SAG\)")


def test_different_image_sizes_are_refused() -> None:
    series = make_series()
    series[1].Rows = ROWS - 1
    refused(series, "different sizes")


def test_too_few_slices_are_refused_unless_allowed() -> None:
    refused(make_series()[:2], r"only 2 slice\(s\); a 3D volume needs at least 3")
    single = assemble_volume(make_series()[:1], min_slices=1)
    assert single.array.shape == (COLUMNS, ROWS, 1)
    assert single.spacing_mm[2] == pytest.approx(STEP_MM)  # SliceThickness for one slice


def test_zero_length_pixel_data_is_refused() -> None:
    series = make_series()
    series[3].PixelData = b""
    refused(series, r"instance #4 has empty \(zero-length\) pixel data")


def test_image_without_pixel_data_is_refused_not_left_out() -> None:
    """An MR image that lost its pixels is broken; only non-image objects are left out
    (tests/engine/test_non_image_objects.py)."""
    series = make_series()
    del series[1].PixelData
    refused(series, r"instance #2 has no pixel data although it is an image \(MR Image Storage\)")


def make_enhanced(series: Sequence[FileDataset], *, frame_order: Sequence[int]) -> FileDataset:
    """One enhanced-MR-style instance holding the slices of ``series`` as frames."""
    ds = copy.deepcopy(series[0])
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing",
                    "SliceThickness", "RescaleSlope", "RescaleIntercept"):  # fmt: skip
        if keyword in ds:
            delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    ds.NumberOfFrames = len(frame_order)
    shared = Dataset()
    shared.PlaneOrientationSequence = [Dataset()]
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = series[0].ImageOrientationPatient
    shared.PixelMeasuresSequence = [Dataset()]
    shared.PixelMeasuresSequence[0].PixelSpacing = series[0].PixelSpacing
    ds.SharedFunctionalGroupsSequence = [shared]
    items = []
    for index in frame_order:
        item = Dataset()
        item.PlanePositionSequence = [Dataset()]
        item.PlanePositionSequence[0].ImagePositionPatient = series[index].ImagePositionPatient
        if "RescaleSlope" in series[index]:
            transformation = Dataset()
            transformation.RescaleSlope = series[index].RescaleSlope
            transformation.RescaleIntercept = series[index].RescaleIntercept
            item.PixelValueTransformationSequence = [transformation]
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = items
    ds.PixelData = b"".join(series[index].PixelData for index in frame_order)
    return ds


def test_enhanced_multi_frame_gives_the_same_volume_as_single_frames() -> None:
    series = make_series(orientation=oblique(30.0))
    for ds in series:
        ds.RescaleSlope, ds.RescaleIntercept = f"{0.5 + ds.InstanceNumber / 10}", "2"
    expected = assemble_volume(series)
    enhanced = assemble_volume([make_enhanced(series, frame_order=[4, 1, 0, 5, 2, 3])])
    np.testing.assert_array_equal(enhanced.array, expected.array)
    np.testing.assert_allclose(enhanced.affine, expected.affine, atol=1e-9)
    assert enhanced.metadata["instance_count"] == 1 and enhanced.array.shape[2] == SLICES


def test_enhanced_instance_with_two_stacks_is_refused() -> None:
    series = make_series()
    two_stacks = make_enhanced(series, frame_order=[0, 1, 2, 0, 1, 2])
    refused([two_stacks], "6 images but only 3 distinct slice position")


def test_enhanced_instance_without_per_frame_positions_is_refused() -> None:
    enhanced = make_enhanced(make_series(), frame_order=range(SLICES))
    enhanced.PerFrameFunctionalGroupsSequence = enhanced.PerFrameFunctionalGroupsSequence[:4]
    refused([enhanced], "has 6 frames but 4 per-frame functional group items")


def test_multi_frame_among_single_frames_is_refused_clearly() -> None:
    series = make_series()
    series[0].NumberOfFrames = 2
    refused(series, "multi-frame image .* among other instances")


def test_undecodable_pixels_are_refused_with_the_decoder_message() -> None:
    series = make_series()
    for ds in series:
        ds.compress(RLELossless)
    series[2].PixelData = series[2].PixelData[:20] + b"\xff" * 40
    error = refused(series, r"pixel data of instance #3 cannot be decoded \(RLE Lossless\)")
    assert error.detail


def test_a_decoder_panic_is_a_refusal_not_a_crash() -> None:
    """pylibjpeg-rle (Rust) panics on an over-long RLE run: a BaseException, caught here."""
    series = make_series()
    for ds in series:
        ds.compress(RLELossless)
    run_of_128 = bytes([0x81, 0x00])  # PackBits: repeat 0x00 128 times; a segment holds 56
    header = struct.pack("<16L", 2, 64, 64 + len(run_of_128), *([0] * 13))
    series[2].PixelData = encapsulate([header + run_of_128 + run_of_128])
    # with pylibjpeg-rle installed (it is pinned) the Rust decoder panics; pydicom's own
    # decoder would raise an ordinary error instead
    outcome = "crashed the decoder" if importlib.util.find_spec("rle") else "cannot be decoded"
    refused(series, rf"pixel data of instance #3 {outcome} \(RLE Lossless\)")


def test_non_finite_float_pixels_are_refused() -> None:
    series = make_series()
    for ds in series:
        values = np.full((ROWS, COLUMNS), 1.5, dtype="<f4")
        values[0, 0] = np.nan
        del ds.PixelData
        ds.BitsAllocated, ds.FloatPixelData = 32, values.tobytes()
    refused(series, r"6 voxel value\(s\) are not finite")


def test_images_of_two_series_are_not_one_volume() -> None:
    refused([*make_series()[:3], *make_series()[3:]], "belong to 2 different series")


def test_truncated_file_is_refused_at_decoding(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "series", make_series())
    victim = sorted(folder.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-30])
    with pytest.raises(InvalidSeriesError, match="cannot be decoded .*less than expected"):
        read_series_dir(folder)


def test_non_dicom_files_are_skipped_until_none_is_left(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "series", make_series())
    (folder / "notes.txt").write_text("not DICOM")
    assert len(load_dataset_files(sorted(folder.iterdir()))) == SLICES
    with pytest.raises(DicomError, match=r"None of the 1 file\(s\) .*notes.txt"):
        load_dataset_files([folder / "notes.txt"])


def test_bytes_are_parsed_and_grouped_by_series(tmp_path: Path) -> None:
    first, second = make_series(), make_series()
    folder = write_series(tmp_path / "s", [*first, *second])
    datasets = datasets_from_bytes(p.read_bytes() for p in sorted(folder.iterdir()))
    groups = group_by_series(datasets)
    assert sorted(len(v) for v in groups.values()) == [SLICES, SLICES]
    assert set(groups) == {first[0].SeriesInstanceUID, second[0].SeriesInstanceUID}
    with pytest.raises(DicomError, match=r"Instance #2 \(5 bytes\) is not a readable DICOM"):
        datasets_from_bytes([(folder / f"{first[0].SOPInstanceUID}.dcm").read_bytes(), b"hello"])


def test_series_dir_needs_exactly_one_series(tmp_path: Path) -> None:
    folder = write_series(tmp_path / "two", [*make_series(), *make_series(description="t2_tse")])
    with pytest.raises(DicomError, match="holds 2 series, not exactly one"):
        read_series_dir(folder)
    with pytest.raises(DicomError, match="does not exist"):
        read_series_dir(tmp_path / "absent")


def test_study_dir_reports_refused_series_without_stopping(tmp_path: Path) -> None:
    tilted = make_series(shear=(0.0, 0.5, 0.0), description="AX T2 FSE")
    folder = write_series(tmp_path / "study", [*make_series(), *tilted])
    study = read_study_dir(folder)
    assert [header["SeriesDescription"] for header, _ in study.volumes] == ["AX T1 POST GD"]
    (refusal,) = study.refused
    assert refusal.series_description == "AX T2 FSE" and refusal.instance_count == SLICES
    assert "gantry tilt" in refusal.reason


def test_nifti_round_trip_and_no_silent_overwrite(tmp_path: Path) -> None:
    volume = assemble_volume(make_series(orientation=oblique()))
    path = write_nifti(volume, tmp_path / "t1c.nii.gz")
    back = read_nifti(path)
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.array.dtype == volume.array.dtype
    np.testing.assert_allclose(back.affine, volume.affine, atol=1e-5)
    with pytest.raises(GlioWatchError, match=f"{path} already exists; it was not overwritten"):
        write_nifti(volume, path)
    write_nifti(assemble_volume(make_series()), path, force=True)
    assert read_nifti(path).affine[0, 0] == pytest.approx(-COLUMN_SPACING_MM)
    assert [p.name for p in tmp_path.iterdir()] == ["t1c.nii.gz"]  # no temporary left behind


def test_convert_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_series(tmp_path / "good", make_series())
    out = tmp_path / "out.nii.gz"
    assert main(["convert", str(good), str(out)]) == 0
    assert "6 images" in capsys.readouterr().out
    before = out.read_bytes()
    assert main(["convert", str(good), str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["convert", str(good), str(out), "--force"]) == 0
    tilted = write_series(tmp_path / "tilted", make_series(shear=(0.0, 0.8, 0.0)))
    assert main(["convert", str(tilted), str(tmp_path / "tilted.nii.gz")]) == 1
    assert "gantry tilt of 17.7 deg" in capsys.readouterr().err
    assert not (tmp_path / "tilted.nii.gz").exists()


def test_dataset_read_back_from_disk_matches_in_memory(tmp_path: Path) -> None:
    series = make_series(orientation=oblique(35.0))
    folder = write_series(tmp_path / "s", series)
    from_disk = read_series_dir(folder)
    np.testing.assert_array_equal(from_disk.array, assemble_volume(series).array)
    assert pydicom.dcmread(sorted(folder.iterdir())[0]).Rows == ROWS


def test_convert_prints_the_classification_and_survives_a_broken_rules_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_series(tmp_path / "series", make_series())
    assert main(["convert", str(folder), str(tmp_path / "a.nii.gz")]) == 0
    assert "sequence: T1c: rule 't1c-name'" in capsys.readouterr().out
    config = tmp_path / "gliowatch.toml"
    config.write_text(f"series_rules = '{tmp_path / 'absent.toml'}'\n")
    assert main(["--config", str(config), "convert", str(folder), str(tmp_path / "b.nii.gz")]) == 0
    assert "not classified (Series rules file" in capsys.readouterr().err
    assert (tmp_path / "b.nii.gz").exists()
