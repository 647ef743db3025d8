"""Conformance against real vendor series (../shared/dicom-corpus, references from dicom2nifti
and, under dcm2niix/, from dcm2niix).

Every series under ge/, generic/, philips/ and siemens/ with a ``<case>_ground_truth.nii.gz``
beside it must give the same voxel data at the same world positions as the reference: both are
reoriented to the closest canonical orientation, then arrays are compared (exactly for integer
data) and affines to 1e-3 mm. Every series under failing/ must be refused with a clear reason.
The six dcm2niix/ cases match the same way, except that the two Philips ones differ from
dcm2niix by one constant intensity factor (GlioWatch keeps the displayed value, dcm2niix
Philips' floating-point value) and one holds a Raw Data instance that must be left out.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from engine.dicom import read_nifti, read_series_dir, read_study_dir
from engine.dicom.volume import DEFAULT_MIN_SLICES
from engine.errors import InvalidSeriesError
from engine.types import Volume
from flows.cli import main
from tests.conftest import SHARED_DIR

CORPUS = SHARED_DIR / "dicom-corpus"
VENDORS = ("ge", "generic", "philips", "siemens")
AFFINE_TOLERANCE_MM = 1e-3


def _cases() -> list[str]:
    """Case folders relative to the corpus, e.g. ``siemens/anatomical/001_implicit``."""
    found = []
    for vendor in VENDORS:
        for reference in sorted((CORPUS / vendor).glob("**/*_ground_truth.nii.gz")):
            case = reference.with_name(reference.name.removesuffix("_ground_truth.nii.gz"))
            if case.is_dir():
                found.append(str(case.relative_to(CORPUS)))
    return found


CASES = _cases() or ["(corpus absent)"]  # the shared_dir fixture skips, with its reason
SINGLE_SLICE = "ge/anatomical/001_single_slice"
FAILING = {
    "failing/gantrytilting/001": r"gantry tilt of 14\.0 deg: slices are not orthogonal",
    "failing/notavolume/001": r"4 images but only 1 distinct slice position.*not a single 3D",
    "failing/slicecount/001": r"only 2 slice\(s\); a 3D volume needs at least 3",
}


def _canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = nib.as_closest_canonical(nib.Nifti1Image(array, affine))
    return np.asanyarray(image.dataobj), image.affine


def _assert_same_as_reference(volume: Volume, reference_path: Path) -> None:
    reference = nib.load(reference_path)
    ours, our_affine = _canonical(np.asarray(volume.array), volume.affine)
    theirs, their_affine = _canonical(np.asanyarray(reference.dataobj), reference.affine)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(our_affine, their_affine, rtol=0, atol=AFFINE_TOLERANCE_MM)
    if np.issubdtype(theirs.dtype, np.integer):
        assert np.issubdtype(ours.dtype, np.integer), f"{ours.dtype} for integer reference"
        np.testing.assert_array_equal(ours, theirs)
    else:  # rescaled data: we keep float32, dicom2nifti wrote float64
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-5 * float(np.abs(theirs).max()))


def test_the_corpus_has_the_expected_cases(shared_dir: Path) -> None:
    assert len(CASES) >= 15, CASES  # 16 readable series at the time of writing
    assert SINGLE_SLICE in CASES


@pytest.mark.parametrize("case", [c for c in CASES if c != SINGLE_SLICE])
def test_converted_series_matches_reference_in_world_space(
    shared_dir: Path, tmp_path: Path, case: str
) -> None:
    output = tmp_path / "converted.nii.gz"
    assert main(["convert", str(shared_dir / "dicom-corpus" / case), str(output)]) == 0
    reference = shared_dir / "dicom-corpus" / f"{case}_ground_truth.nii.gz"
    _assert_same_as_reference(read_nifti(output), reference)
    _assert_same_as_reference(read_series_dir(shared_dir / "dicom-corpus" / case), reference)


def test_single_slice_is_refused_by_default_and_matches_when_allowed(shared_dir: Path) -> None:
    folder = shared_dir / "dicom-corpus" / SINGLE_SLICE
    too_few = rf"only 1 slice\(s\); a 3D volume needs at least {DEFAULT_MIN_SLICES}"
    with pytest.raises(InvalidSeriesError, match=too_few):
        read_series_dir(folder)
    volume = read_series_dir(folder, min_slices=1)
    assert volume.array.shape[2] == 1
    _assert_same_as_reference(volume, folder.with_name(f"{folder.name}_ground_truth.nii.gz"))


@pytest.mark.parametrize(("case", "reason"), sorted(FAILING.items()))
def test_failing_series_is_refused_with_a_clear_reason(
    shared_dir: Path, case: str, reason: str
) -> None:
    folder = shared_dir / "dicom-corpus" / case
    with pytest.raises(InvalidSeriesError, match=reason) as info:
        read_series_dir(folder)
    assert "refused:" in str(info.value) and info.value.action


def test_every_failing_case_is_covered(shared_dir: Path) -> None:
    on_disk = {
        str(p.relative_to(shared_dir / "dicom-corpus"))
        for p in (shared_dir / "dicom-corpus" / "failing").glob("*/*")
        if p.is_dir()
    }
    assert on_disk == set(FAILING)


# --- dcm2niix/: six real scanner series with dcm2niix references --------------------------------

DCM2NIIX = CORPUS / "dcm2niix"
#: cases whose voxels must equal dcm2niix's exactly (integer data, no vendor scaling).
DCM2NIIX_EXACT = (
    "ge_3d_axial_mprage",
    "siemens_2d_sagittal_head_first_prone",
    "siemens_2d_sagittal_head_first_supine",
    "siemens_xa_enhanced_multiframe_3d_t1",
)
#: Philips cases: dcm2niix keeps the floating-point value, GlioWatch the displayed value.
DCM2NIIX_PHILIPS = ("philips_classic_2d_t1_ffe", "philips_enhanced_2d_t1_tse_with_raw_data")
PHILIPS_PRIVATE_GROUP = (0x2005, 0x100F)  # per-frame private item of enhanced Philips files
PHILIPS_SCALE_SLOPE = (0x2005, 0x100E)
#: float32 voxels against dcm2niix's float32 scaling: relative agreement of a constant factor.
FACTOR_TOLERANCE = 1e-5


def _dcm2niix_reference(case: str) -> Path:
    (reference,) = sorted((DCM2NIIX / case).glob("reference_dcm2niix.nii*"))
    return reference


def test_the_dcm2niix_corpus_has_the_six_cases(shared_dir: Path) -> None:
    on_disk = {p.name for p in (shared_dir / "dicom-corpus" / "dcm2niix").iterdir() if p.is_dir()}
    assert on_disk == {*DCM2NIIX_EXACT, *DCM2NIIX_PHILIPS}


@pytest.mark.parametrize("case", DCM2NIIX_EXACT)
def test_dcm2niix_case_matches_its_reference_exactly(
    shared_dir: Path, tmp_path: Path, case: str
) -> None:
    output = tmp_path / "converted.nii.gz"
    assert main(["convert", str(DCM2NIIX / case / "dicom"), str(output)]) == 0
    _assert_same_as_reference(read_nifti(output), _dcm2niix_reference(case))
    assert read_series_dir(DCM2NIIX / case / "dicom").metadata["ignored_objects"] == ()


def _philips_scale(folder: Path) -> tuple[float, float, float]:
    """(RescaleSlope, RescaleIntercept, private scale slope) shared by every slice or frame.

    Asserts that they are the same everywhere: that is what makes the factor constant.
    """
    values = set()
    for path in sorted(folder.iterdir()):
        ds = pydicom.dcmread(path)
        if "PixelData" not in ds:
            continue  # the Raw Data Storage instance
        items = ds.get("PerFrameFunctionalGroupsSequence") or [ds]
        for item in items:
            rescale = item.PixelValueTransformationSequence[0] if item is not ds else ds
            private = item[PHILIPS_PRIVATE_GROUP].value[0] if item is not ds else ds
            values.add(
                (float(rescale.RescaleSlope), float(rescale.RescaleIntercept),
                 float(private[PHILIPS_SCALE_SLOPE].value))
            )  # fmt: skip
    assert len(values) == 1, f"slices differ in their Philips scaling: {sorted(values)}"
    return values.pop()


@pytest.mark.parametrize("case", DCM2NIIX_PHILIPS)
def test_philips_case_matches_dcm2niix_up_to_one_constant_factor(
    shared_dir: Path, tmp_path: Path, case: str
) -> None:
    """GlioWatch keeps the displayed value ``stored * RescaleSlope + RescaleIntercept`` (the
    standard modality LUT, see engine/dicom/pixels.py for why); dcm2niix keeps Philips'
    floating-point value ``displayed / (RescaleSlope * scale slope)``. So the volumes agree in
    world space and GlioWatch's voxels are dcm2niix's times ``RescaleSlope * scale slope``,
    one factor for the whole volume, read from the headers (not fitted)."""
    folder = DCM2NIIX / case / "dicom"
    output = tmp_path / "converted.nii.gz"
    assert main(["convert", str(folder), str(output)]) == 0
    volume = read_nifti(output)
    slope, intercept, scale_slope = _philips_scale(folder)
    assert intercept == 0.0  # else the factor would not be the same for every voxel value
    factor = slope * scale_slope

    reference = nib.load(_dcm2niix_reference(case))
    ours, our_affine = _canonical(np.asarray(volume.array), volume.affine)
    theirs, their_affine = _canonical(np.asanyarray(reference.dataobj), reference.affine)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(our_affine, their_affine, rtol=0, atol=AFFINE_TOLERANCE_MM)
    assert ours.dtype == np.float32  # the displayed value, not the stored integer
    np.testing.assert_allclose(
        ours, theirs * factor, rtol=FACTOR_TOLERANCE, atol=FACTOR_TOLERANCE * float(ours.max())
    )
    signal = theirs > 0.01 * float(theirs.max())
    ratios = ours[signal] / theirs[signal]
    assert float(ratios.max() - ratios.min()) <= FACTOR_TOLERANCE * factor  # one constant factor


def test_philips_raw_data_beside_the_image_is_left_out_and_reported(
    shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The series folder holds the enhanced image and a Raw Data Storage instance of the same
    series: the image converts, the raw data is named as left out (issue 34)."""
    folder = DCM2NIIX / "philips_enhanced_2d_t1_tse_with_raw_data" / "dicom"
    volume = read_series_dir(folder)
    (ignored,) = volume.metadata["ignored_objects"]
    assert (ignored.sop_class_name, ignored.instance_count) == ("Raw Data Storage", 1)
    assert ignored.series_uid == volume.metadata["series_uid"]  # in the image series itself
    assert volume.metadata["instance_count"] == 1 and volume.array.shape[2] > 1
    study = read_study_dir(folder)
    assert len(study.volumes) == 1 and study.refused == () and study.ignored == (ignored,)
    assert main(["convert", str(folder), str(tmp_path / "t1.nii.gz")]) == 0
    assert "left out: 1 Raw Data Storage instance (not images)" in capsys.readouterr().out
