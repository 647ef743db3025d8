"""The DICOM Segmentation of a study's labels (engine/writeback): read back with highdicom,
checked voxel for voxel in the source geometry, validated by dciodvfy, left out by GlioWatch's
own ingest.

The source is a small oblique T1c series written here (10 columns x 12 rows x 5 slices,
0.9 x 1.2 x 2.5 mm, tilted 20 deg about x and -12 deg about y, files and instance numbers in
reverse slice order), also converted to one enhanced MR instance (frames instead of files); the
labels hold known voxels for NETC, SNFH and ET, and RC is empty.

dciodvfy (Debian dicom3tools 1.00~20220618) on the BINARY SEG, from single-frame or
multi-frame sources: no error, one warning:

* ``Warning - Unrecognized defined term <99GLIOWATCH> for value 1 of attribute <Coding Scheme
  Designator>``: the private code of the resection cavity (see engine/writeback/segment_codes.py).

On the LABELMAP SEG that dciodvfy reports two errors, both because the tool predates the Label
Map Segmentation IOD (DICOM 2024, SOP class 1.2.840.10008.5.1.4.1.1.66.7): ``Information
Object Not found`` and ``SegmentNumber not monotonically increasing from one`` (segment 0 is the
background a label map must describe). The test accepts those two (none from a newer dciodvfy)
and nothing else.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from engine.dicom import read_series_dir, read_study_dir
from engine.dicom.sop_classes import non_image_class, split_series_objects
from engine.errors import WriteBackError
from engine.types import Label, Volume
from engine.writeback import build_segmentation

COLUMNS, ROWS, SLICES = 10, 12, 5
PIXEL_SPACING_MM = (1.2, 0.9)  # DICOM order: between rows, between columns
SLICE_SPACING_MM = 2.5
MODEL = dict(model_name="gliowatch-unet", model_version="1.2.0", weights_sha256="ab" * 32,
             config_sha256="cd" * 32)  # fmt: skip
EMPTY_LABEL = Label.RC
#: what dciodvfy 2022 warns about a BINARY SEG (see the docstring).
DCIODVFY_WARNINGS = {
    "Warning - Unrecognized defined term <99GLIOWATCH> for value 1 of attribute "
    "<Coding Scheme Designator>"
}
#: errors of dciodvfy 2022 on a label map SEG, an IOD it does not know yet (see the docstring).
DCIODVFY_LABELMAP_ERRORS = {
    "Error - Information Object Not found",
    "Error - SegmentNumber not monotonically increasing from one by one - have SegmentSequence "
    "item number 1 (from one) with SegmentNumber of 0",
}


def _rotation(x_deg: float, y_deg: float) -> np.ndarray:
    a, b = np.radians(x_deg), np.radians(y_deg)
    about_x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    about_y = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    return about_x @ about_y


def write_oblique_t1c(folder: Path) -> list[Path]:
    """A complete single-frame MR series (MR Image Storage, every attribute dciodvfy wants)."""
    folder.mkdir(parents=True)
    rotation = _rotation(20.0, -12.0)
    row_dir, col_dir = rotation[:, 0], rotation[:, 1]
    normal = np.cross(row_dir, col_dir)
    origin = np.array([-30.0, -40.0, 10.0])
    study_uid, series_uid, frame_of_reference_uid = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for k in range(SLICES):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference_uid, ""
        ds.PatientName, ds.PatientID = "SYNTHETIC^T1C", "P1"
        ds.PatientBirthDate, ds.PatientSex = "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20250314", "101500", "1", "A1"
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.Manufacturer, ds.SeriesNumber = "MR", "SIEMENS", 5
        ds.SeriesDescription = "AX T1 POST GD"
        ds.InstanceNumber = SLICES - k  # instance order is the reverse of the slice order
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "SK", ""
        ds.MRAcquisitionType, ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = "2D", 500, 12, 1
        ds.ContrastBolusAgent = "GADOLINIUM"
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_dir, *col_dir)]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in origin + k * SLICE_SPACING_MM * normal]
        ds.PixelSpacing, ds.SliceThickness = list(PIXEL_SPACING_MM), SLICE_SPACING_MM
        ds.Rows, ds.Columns, ds.SamplesPerPixel = ROWS, COLUMNS, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.WindowCenter, ds.WindowWidth = 100, 50
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.full((ROWS, COLUMNS), 100 + k, dtype=np.uint16).tobytes()
        path = folder / f"IM{SLICES - k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def known_labels(t1c: Volume) -> Volume:
    """NETC, SNFH and ET at known voxels (ET a single voxel in a corner); RC empty."""
    array = np.zeros(t1c.array.shape, dtype=np.uint8)
    array[2:5, 3:7, 1:3] = Label.NETC
    array[6:9, 1:4, 0:4] = Label.SNFH
    array[0, 0, 4] = Label.ET
    array[9, 11, 2] = Label.ET
    return Volume(array=array, affine=t1c.affine.copy())


@pytest.fixture
def study(tmp_path: Path) -> tuple[list[pydicom.Dataset], Volume, Path]:
    """(the T1c datasets, the labels on their grid, the study folder)."""
    paths = write_oblique_t1c(tmp_path / "study" / "T1c")
    t1c = read_series_dir(paths[0].parent)
    return [pydicom.dcmread(p) for p in paths], known_labels(t1c), tmp_path / "study"


def build_and_read(sources: list[pydicom.Dataset], labels: Volume, folder: Path,
                   segmentation_type: str = "BINARY") -> tuple[hd.seg.Segmentation, Path]:
    """Build the SEG, write it as a file, read it back with highdicom."""
    seg = build_segmentation(sources, labels, **MODEL, series_number=90,
                             segmentation_type=segmentation_type)
    path = folder / "SEG" / f"seg_{segmentation_type.lower()}.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path, enforce_file_format=True)
    return hd.seg.segread(path), path


@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
def test_the_seg_has_four_coded_segments_made_by_the_model(study, segmentation_type) -> None:
    sources, labels, folder = study
    seg, _ = build_and_read(sources, labels, folder, segmentation_type)
    assert seg.SegmentationType == segmentation_type
    assert seg.SOPClassUID == {"BINARY": "1.2.840.10008.5.1.4.1.1.66.4",
                               "LABELMAP": "1.2.840.10008.5.1.4.1.1.66.7"}[segmentation_type]
    assert seg.get_segment_numbers() == [1, 2, 3, 4]
    expected = {
        1: ("NETC", ("6574001", "SCT", "Necrosis")),
        2: ("SNFH", ("79654002", "SCT", "Edema")),
        3: ("ET", ("C113842", "NCIt", "Enhancing Lesion")),
        4: ("RC", ("RC", "99GLIOWATCH", "Resection cavity")),
    }
    for number, (segment_label, property_type) in expected.items():
        description = seg.get_segment_description(number)
        assert description.segment_label == segment_label
        assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        category = description.segmented_property_category
        assert (category.value, category.scheme_designator) == ("49755003", "SCT")
        kind = description.segmented_property_type
        assert (kind.value, kind.scheme_designator, kind.meaning) == property_type
        assert [(r.value, r.scheme_designator) for r in description.anatomic_regions] == [
            ("12738006", "SCT")
        ]
        algorithm = description.algorithm_identification[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("gliowatch-unet", "1.2.0")
        family = algorithm.AlgorithmFamilyCodeSequence[0]
        assert (family.CodeValue, family.CodeMeaning) == ("123110", "Artificial Intelligence")
        assert algorithm.AlgorithmParameters == (
            f"weights_sha256={'ab' * 32},config_sha256={'cd' * 32}"
        )
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    instances = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert {item.ReferencedSOPInstanceUID for item in instances} == {
        ds.SOPInstanceUID for ds in sources
    }


@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
def test_each_segment_equals_its_label_voxel_for_voxel(study, segmentation_type) -> None:
    sources, labels, folder = study
    seg, _ = build_and_read(sources, labels, folder, segmentation_type)
    # 1. by reference: the frames of each source instance hold that slice's labels
    origin_ras, step_ras = labels.affine[:3, 3], labels.affine[:3, 2]
    for ds in sources:
        lps = np.array([float(v) for v in ds.ImagePositionPatient])
        ras = np.array([-lps[0], -lps[1], lps[2]])
        k = int(round(float((ras - origin_ras) @ step_ras / (step_ras @ step_ras))))
        pixels = seg.get_pixels_by_source_instance(
            [ds.SOPInstanceUID], segment_numbers=[1, 2, 3, 4]
        )
        for number in (1, 2, 3, 4):
            expected = labels.array[:, :, k].T == number
            np.testing.assert_array_equal(pixels[0, :, :, number - 1], expected)
    # 2. by geometry
    assert_seg_volume_equals(seg, labels)


def assert_seg_volume_equals(seg: hd.seg.Segmentation, labels: Volume) -> None:
    """Every voxel of the SEG's own volume, mapped through its affine (LPS, [slice, row,
    column]) onto the label grid (RAS, [i, j, k]), holds that voxel's label; none is missed."""
    volume = seg.get_volume(combine_segments=True)
    indices = np.indices(volume.spatial_shape).reshape(3, -1)
    world_lps = volume.affine @ np.vstack([indices, np.ones(indices.shape[1])])
    world_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ world_lps
    ijk = (np.linalg.inv(labels.affine) @ world_ras)[:3]
    np.testing.assert_allclose(ijk, np.rint(ijk), atol=1e-3)
    i, j, k = np.rint(ijk).astype(int)
    np.testing.assert_array_equal(volume.array.reshape(-1), labels.array[i, j, k])
    assert sorted(zip(i, j, k)) == sorted(np.ndindex(labels.array.shape))  # every voxel once


def test_the_empty_segment_is_present_and_empty(study) -> None:
    sources, labels, folder = study
    assert not np.any(labels.array == EMPTY_LABEL)
    seg, _ = build_and_read(sources, labels, folder, "BINARY")
    assert seg.NumberOfFrames == 4 * SLICES  # no frame left out, empty ones included
    frames_per_segment = [
        int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        for item in seg.PerFrameFunctionalGroupsSequence
    ]
    assert [frames_per_segment.count(n) for n in (1, 2, 3, 4)] == [SLICES] * 4
    empty = seg.get_volume(segment_numbers=[int(EMPTY_LABEL)]).array
    assert empty.shape[:3] == (SLICES, ROWS, COLUMNS) and not np.any(empty)
    for number in (1, 2, 3):
        assert np.any(seg.get_volume(segment_numbers=[number]).array)


def test_the_empty_segment_is_described_in_a_label_map(study) -> None:
    sources, labels, folder = study
    seg, _ = build_and_read(sources, labels, folder, "LABELMAP")
    assert seg.NumberOfFrames == SLICES
    numbers = [int(item.SegmentNumber) for item in seg.SegmentSequence]
    assert numbers == [0, 1, 2, 3, 4]  # 0: the background a label map describes
    assert not np.any(seg.get_volume(combine_segments=True).array == EMPTY_LABEL)


def dciodvfy_messages(path: Path) -> tuple[set[str], set[str]]:
    """(errors, warnings) dciodvfy reports for ``path``; skips the test when it is missing."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not installed (Debian dicom3tools; `make system` installs it)")
    run = subprocess.run(
        ["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    lines = [line.strip() for line in (run.stdout + run.stderr).splitlines()]
    errors = {line for line in lines if line.startswith("Error")}
    return errors, {line for line in lines if line.startswith("Warning")}


def test_dciodvfy_finds_no_error_in_the_binary_seg(study) -> None:
    sources, labels, folder = study
    _, path = build_and_read(sources, labels, folder, "BINARY")
    errors, warnings = dciodvfy_messages(path)
    assert errors == set()
    assert warnings == DCIODVFY_WARNINGS


def test_dciodvfy_knows_no_label_map_iod_yet(study) -> None:
    """Only the two errors of a validator older than the Label Map Segmentation IOD."""
    sources, labels, folder = study
    _, path = build_and_read(sources, labels, folder, "LABELMAP")
    errors, warnings = dciodvfy_messages(path)
    assert errors <= DCIODVFY_LABELMAP_ERRORS
    assert warnings <= DCIODVFY_WARNINGS


@pytest.mark.parametrize("segmentation_type", ["BINARY", "LABELMAP"])
def test_gliowatch_ingest_leaves_the_seg_out(study, segmentation_type) -> None:
    sources, labels, folder = study
    _, path = build_and_read(sources, labels, folder, segmentation_type)
    seg = pydicom.dcmread(path)
    assert non_image_class(seg) is not None
    seg.Modality = "MR"  # decided by the SOP class itself, not by the Modality fallback
    assert non_image_class(seg) is not None
    seg.Modality = "SEG"
    objects = split_series_objects([seg])
    assert objects.images == () and objects.ignored[0].instance_count == 1
    read = read_study_dir(folder)  # the T1c and the SEG series side by side
    series_read = [volume.metadata["series_uid"] for _, volume in read.volumes]
    assert series_read == [sources[0].SeriesInstanceUID]
    assert read.refused == ()
    assert [item.series_uid for item in read.ignored] == [seg.SeriesInstanceUID]


def test_labels_off_the_source_grid_are_refused(study) -> None:
    sources, labels, _ = study
    cropped = Volume(array=labels.array[:, :, :-1], affine=labels.affine)
    with pytest.raises(WriteBackError, match=r"not on the grid .* shape \(10, 12, 4\)"):
        build_segmentation(sources, cropped, **MODEL, series_number=90)
    shifted_affine = labels.affine.copy()
    shifted_affine[:3, 3] += [0.0, 0.5, 0.0]
    shifted = Volume(array=labels.array, affine=shifted_affine)
    with pytest.raises(WriteBackError, match=r"corner voxel lies 0\.500 mm"):
        build_segmentation(sources, shifted, **MODEL, series_number=90)


def test_unknown_label_values_and_types_are_refused(study) -> None:
    sources, labels, _ = study
    array = labels.array.copy()
    array[0, 0, 0] = 7
    with pytest.raises(WriteBackError, match=r"values \[7\] that are no GlioWatch label"):
        unknown = Volume(array=array, affine=labels.affine)
        build_segmentation(sources, unknown, **MODEL, series_number=90)
    with pytest.raises(ValueError, match="Argument 'segmentation_type' must be one of"):
        build_segmentation(
            sources, labels, **MODEL, series_number=90, segmentation_type="FRACTIONAL"
        )


def test_the_source_datasets_are_left_untouched(study) -> None:
    sources, labels, _ = study
    del sources[0].PatientBirthDate  # a type-2 attribute the SEG copies (empty when absent)
    before = [ds.to_json_dict() for ds in sources]
    seg = build_segmentation(sources, labels, **MODEL, series_number=90)
    assert [ds.to_json_dict() for ds in sources] == before
    assert seg.PatientBirthDate == ""



def enhanced_copy(sources: list[pydicom.Dataset], folder: Path) -> pydicom.Dataset:
    """The same slices as one enhanced (legacy converted) MR instance, read back from a file."""
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage(
        sources, series_instance_uid=generate_uid(), series_number=6,
        sop_instance_uid=generate_uid(), instance_number=1,
    )  # fmt: skip
    enhanced.save_as(folder / "enhanced.dcm", enforce_file_format=True)
    return pydicom.dcmread(folder / "enhanced.dcm")


def test_a_multi_frame_source_is_referenced_frame_by_frame(study, tmp_path) -> None:
    sources, labels, _ = study
    enhanced = enhanced_copy(sources, tmp_path)
    seg, _ = build_and_read([enhanced], labels, tmp_path)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == enhanced.SeriesInstanceUID
    assert_seg_volume_equals(seg, labels)


def test_dciodvfy_finds_no_error_with_a_multi_frame_source(study, tmp_path) -> None:
    sources, labels, _ = study
    _, path = build_and_read([enhanced_copy(sources, tmp_path)], labels, tmp_path)
    errors, warnings = dciodvfy_messages(path)
    assert errors == set()
    assert warnings == DCIODVFY_WARNINGS
