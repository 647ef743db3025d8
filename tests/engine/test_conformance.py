"""Conformance against real vendor series (../shared/dicom-corpus, references from dicom2nifti).

Every series under ge/, generic/, philips/ and siemens/ with a ``<case>_ground_truth.nii.gz``
beside it must give the same voxel data at the same world positions as the reference: both are
reoriented to the closest canonical orientation, then arrays are compared (exactly for integer
data) and affines to 1e-3 mm. Every series under failing/ must be refused with a clear reason.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from engine.dicom import read_nifti, read_series_dir
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
