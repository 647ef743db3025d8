"""BraTS space (engine/segmentation/space.py) on synthetic studies with known poses.

The atlas is a synthetic skull-stripped "brain" on the BraTS grid (an ellipsoid with darker
ventricles and asymmetric bright structures); each study is the same object seen through a known
rigid pose on its own grid (anisotropic voxels, other axis order). The registration must recover
the pose, and a label volume mapped to atlas space and back must land within one voxel.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.transform import Rotation

from engine.errors import SegmentationError
from engine.segmentation.space import BRATS_AFFINE, BRATS_SHAPE, PreparedStudy, prepare_brats_space
from engine.types import Sequence, Volume

#: the object's centre in atlas world (RAS mm): the middle of the BraTS grid.
CENTRE = (BRATS_AFFINE @ np.array([119.5, 119.5, 77.0, 1.0]))[:3]


def _brain(points: np.ndarray) -> np.ndarray:
    """Intensity of the synthetic brain at atlas-world points (N, 3): 0 outside.

    Smooth edges (1.5 mm) and a low-frequency texture inside, so that every rotation changes the
    image (a plain ellipsoid hardly constrains rotations about its axes)."""
    d = (points - CENTRE).astype(np.float32)
    radius = np.sqrt(((d / np.float32([65.0, 80.0, 55.0])) ** 2).sum(1))
    inside = radius <= 1.0
    value = 100.0 / (1.0 + np.exp(np.clip((radius - 0.97) * 40.0, -50, 50)))
    value += 25.0 * np.sin(d[:, 0] / 9.0) * np.cos(d[:, 1] / 13.0) * np.sin(d[:, 2] / 7.0 + 0.5)
    for centre, size, level in (([0.0, 5.0, 10.0], [12.0, 30.0, 12.0], -60.0), ([30.0, 30.0, 20.0], [12.0] * 3, 60.0),
                                ([-25.0, -40.0, -10.0], [16.0, 10.0, 8.0], 40.0)):
        r = np.sqrt((((d - np.float32(centre)) / np.float32(size)) ** 2).sum(1))
        value += level / (1.0 + np.exp(np.clip((r - 1.0) * 8.0, -50, 50)))
    return np.where(inside, np.maximum(value, 1.0), 0.0).astype(np.float32)


def _grid_points(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    index = np.indices(shape).reshape(3, -1).T
    return index @ affine[:3, :3].T + affine[:3, 3]


def _atlas() -> Volume:
    """The synthetic atlas over the BraTS grid's field of view at 2 mm: the registration runs on
    2 mm copies anyway (space.REGISTRATION_MM), and it is 8x quicker to draw."""
    affine = BRATS_AFFINE @ np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = (BRATS_AFFINE @ np.array([0.5, 0.5, 0.5, 1.0]))[:3]
    shape = tuple(n // 2 for n in BRATS_SHAPE)
    return Volume(_brain(_grid_points(shape, affine)).reshape(shape), affine)


def _pose(degrees: tuple[float, float, float], shift_mm: tuple[float, float, float]) -> np.ndarray:
    """native world -> atlas world (rigid), the native frame centred far from the atlas's."""
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()
    pose[:3, 3] = CENTRE + np.asarray(shift_mm)
    return pose


def _native(pose: np.ndarray, *, spacing: tuple[float, float, float], shape: tuple[int, int, int]) -> Volume:
    """The object seen through ``pose`` on a grid centred on the native origin (axes permuted, LPS-like)."""
    affine = np.zeros((4, 4))
    affine[0, 1], affine[1, 0], affine[2, 2], affine[3, 3] = -spacing[0], -spacing[1], spacing[2], 1.0
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    world = _grid_points(shape, affine)
    atlas_points = world @ pose[:3, :3].T + pose[:3, 3]
    return Volume(_brain(atlas_points).reshape(shape).astype(np.float32), affine)


@pytest.fixture(scope="module")
def atlas() -> Volume:
    return _atlas()


CASES = [((8.0, -5.0, 12.0), (6.0, -4.0, 3.0), (1.0, 1.0, 2.0), (190, 200, 75)),
         pytest.param((-10.0, 6.0, -4.0), (-5.0, 8.0, -6.0), (1.5, 1.5, 1.5), (130, 140, 100), marks=pytest.mark.slow)]


@pytest.mark.parametrize(("degrees", "shift", "spacing", "shape"), CASES)
def test_round_trip_lands_within_one_voxel(atlas: Volume, degrees, shift, spacing, shape) -> None:  # noqa: ANN001
    pose = _pose(degrees, shift)
    native = _native(pose, spacing=spacing, shape=shape)
    prepared = prepare_brats_space({Sequence.T1C: native}, atlas=atlas, align=False)

    # the pose is recovered: brain points land within the registration grid's 2 mm of where the
    # known pose puts them (measured 2026-12-07: p95 0.7-1.3 mm)
    brain_points = _grid_points(shape, native.affine)[native.array.ravel() > 0][::50]
    homogeneous = np.c_[brain_points, np.ones(len(brain_points))]
    error_mm = np.linalg.norm((homogeneous @ (prepared.native_to_atlas - pose).T)[:, :3], axis=1)
    print(f"pose error p95 {np.percentile(error_mm, 95):.2f} mm")
    assert np.percentile(error_mm, 95) < 2.0, f"pose error p95 {np.percentile(error_mm, 95):.2f} mm"

    assert prepared.volumes[Sequence.T1C].array.shape == BRATS_SHAPE
    assert prepared.flags == ("brain:input_stripped",)
    brain = np.asarray(prepared.volumes[Sequence.T1C].array) > 0  # skull-stripped in atlas space
    outside = ~ndimage.binary_dilation(np.repeat(np.repeat(np.repeat(atlas.array > 0, 2, 0), 2, 1), 2, 2),
                                       iterations=3)[:, :, : BRATS_SHAPE[2]]
    assert brain.any() and not brain[np.pad(outside, [(0, 0), (0, 0), (0, max(0, BRATS_SHAPE[2] - outside.shape[2]))],
                                         constant_values=True)].any()

    # a label volume (two blobs, two labels) to atlas space and back
    labels = np.zeros(shape, np.uint8)
    index = np.indices(shape).transpose(1, 2, 3, 0)
    centre = np.asarray(shape) / 2.0
    labels[(np.linalg.norm((index - centre - [10, 5, 0]) * spacing, axis=-1) <= 14.0)] = 2
    labels[(np.linalg.norm((index - centre - [10, 5, 0]) * spacing, axis=-1) <= 6.0)] = 3
    in_atlas = prepared.labels_to_atlas(Volume(labels, native.affine))
    back = prepared.labels_to_native(in_atlas)
    assert back.array.shape == shape
    np.testing.assert_allclose(back.affine, native.affine)
    for label in (2, 3):
        before, after = labels == label, back.array == label
        dice = 2 * (before & after).sum() / (before.sum() + after.sum())
        boundary = before ^ ndimage.binary_erosion(before)
        near_boundary = ndimage.binary_dilation(boundary, structure=np.ones((3, 3, 3), bool))
        assert not ((before ^ after) & ~near_boundary).any(), "a voxel moved by more than one voxel"
        assert dice > 0.9, f"label {label}: Dice {dice:.3f}"


def test_no_atlas_is_a_clear_refusal() -> None:
    native = _native(_pose((0, 0, 0), (0, 0, 0)), spacing=(2.0, 2.0, 2.0), shape=(100, 100, 80))
    with pytest.raises(SegmentationError, match="atlas"):
        prepare_brats_space({Sequence.T1C: native})


def test_labels_of_the_wrong_shape_are_refused() -> None:
    native = Volume(np.zeros((10, 10, 10), np.float32), np.eye(4))
    prepared = PreparedStudy(volumes={}, native=native, reference_sequence=Sequence.T1C, native_to_atlas=np.eye(4))
    with pytest.raises(ValueError, match="atlas shape"):
        prepared.labels_to_native(np.zeros((10, 10, 10), np.uint8))


def test_an_atlas_file_off_the_brats_grid_is_refused(tmp_path) -> None:  # noqa: ANN001
    from engine.dicom.nifti import write_nifti
    from engine.segmentation.space import load_atlas

    path = write_nifti(Volume(np.ones((20, 20, 20), np.float32), np.eye(4)), tmp_path / "atlas.nii.gz")
    with pytest.raises(SegmentationError, match="not on the BraTS grid"):
        load_atlas(path)
    with pytest.raises(SegmentationError, match="does not exist"):
        load_atlas(tmp_path / "missing.nii.gz")
