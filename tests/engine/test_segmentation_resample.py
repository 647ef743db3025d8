"""Separable resampling and one-pass hole filling give what MONAI and the per-slice loop give."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import SpatialResample
from scipy import ndimage

from engine.segmentation.preprocess import fill_holes
from engine.segmentation.resample import axis_alignment, resample_world


def monai_resample(data: torch.Tensor, source: np.ndarray, target: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    src = MetaTensor(data, affine=torch.as_tensor(source, dtype=torch.float64))
    out = SpatialResample(mode="bilinear", padding_mode="zeros", dtype=torch.float32)(
        src, dst_affine=torch.as_tensor(target, dtype=torch.float64), spatial_size=shape)
    return out.as_tensor()


def random_axis_aligned(rng: np.random.Generator) -> np.ndarray:
    affine = np.zeros((4, 4))
    affine[3, 3] = 1.0
    for column, row in enumerate(rng.permutation(3)):
        affine[row, column] = rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 5.0)
    affine[:3, 3] = rng.uniform(-10.0, 10.0, 3)
    return affine


@pytest.mark.parametrize("seed", range(8))
def test_separable_trilinear_matches_monai_for_flipped_permuted_scaled_grids(seed):
    rng = np.random.default_rng(seed)
    data = torch.rand(2, 20, 17, 9)
    source = random_axis_aligned(rng)
    voxel_map = random_axis_aligned(rng)  # target voxel -> source voxel: scaled, flipped, permuted
    voxel_map[:3, :3] /= np.abs(voxel_map[:3, :3]).max(axis=0) / rng.uniform(0.4, 1.6, 3)
    voxel_map[:3, 3] = rng.uniform(0.0, 8.0, 3)
    target = source @ voxel_map  # overlaps the source's field of view, partly beyond it
    shape = (23, 19, 31)
    assert axis_alignment(source, target) is not None
    ours = resample_world(data, source_affine=source, target_affine=target, shape=shape)
    theirs = monai_resample(data, source, target, shape)
    assert ours.shape == theirs.shape
    assert float(theirs.abs().max()) > 0.1 and float((theirs == 0).float().mean()) > 0  # inside and outside
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_oblique_grids_go_through_monai():
    angle = np.deg2rad(20.0)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    source = np.diag([1.0, 1.0, 2.0, 1.0])
    target = rotation @ np.diag([1.5, 1.5, 1.5, 1.0])
    data = torch.rand(1, 16, 16, 8)
    assert axis_alignment(source, target) is None
    ours = resample_world(data, source_affine=source, target_affine=target, shape=(10, 10, 10))
    assert torch.allclose(ours, monai_resample(data, source, target, (10, 10, 10)), atol=1e-6)


def per_slice_fill(mask: np.ndarray) -> np.ndarray:
    """The loop fill_holes replaced: 3-D fill, then 2-D fill of every slice along each axis."""
    out = ndimage.binary_fill_holes(mask)
    for axis in range(3):
        for index in range(out.shape[axis]):
            plane = [slice(None)] * 3
            plane[axis] = index
            out[tuple(plane)] = ndimage.binary_fill_holes(out[tuple(plane)])
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("workers", [1, 3])
def test_one_pass_hole_filling_equals_the_per_slice_loop(seed, workers):
    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.random((30, 36, 33)), 2.5) > 0.5 + rng.uniform(-0.03, 0.03)
    mask[5:15, 5:15, :] = False  # a tube open at both ends: only the per-slice fill closes it
    mask[5:15, 5:15, :] |= np.pad(np.ones((8, 8), bool), 1)[:, :, None] ^ np.pad(np.ones((6, 6), bool), 2)[:, :, None]
    mask[20:27, 20:27, 20:27] = True  # a closed cube with a cavity: a 3-D hole
    mask[22:25, 22:25, 22:25] = False
    ours = fill_holes(mask)
    for axis in range(3):
        ours = fill_holes(ours, plane_normal=axis, workers=workers)
    expected = per_slice_fill(mask)
    assert np.array_equal(ours, expected)
    assert expected[10, 10, :].all() and not mask[10, 10, :].any()
    assert expected[23, 23, 23] and not mask[23, 23, 23]
    # the 3-D fill first changes nothing: a hole enclosed in 3-D is enclosed in every slice
    per_slice_only = mask
    for axis in range(3):
        per_slice_only = fill_holes(per_slice_only, plane_normal=axis, workers=workers)
    assert np.array_equal(per_slice_only, expected)


def old_head_mask(reference: np.ndarray) -> np.ndarray:
    """head_mask_of as it was before threads: one-thread Gaussian, the 3-D fill first."""
    from engine.arrays import bounding_box
    from engine.segmentation.preprocess import HEAD_THRESHOLD_FRACTION

    smooth = ndimage.gaussian_filter(reference.astype(np.float32), sigma=1.0)
    mask = smooth > HEAD_THRESHOLD_FRACTION * float(np.percentile(smooth[smooth > 0], 99))
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        mask = components == int(sizes.argmax())
    lo, hi = bounding_box(mask, margin=1)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    sub = fill_holes(np.pad(mask[box], 1))
    for axis in range(3):
        sub = fill_holes(sub, plane_normal=axis)
    out = np.zeros(mask.shape, dtype=bool)
    out[box] = sub[1:-1, 1:-1, 1:-1]
    return out


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_threaded_head_mask_is_bit_identical_to_one_thread(workers):
    from engine.segmentation.preprocess import gaussian_smooth, head_mask_of

    rng = np.random.default_rng(7)
    grid = np.indices((41, 38, 29)).astype(np.float32)
    centre = np.array([20.0, 18.0, 16.0])[:, None, None, None]
    head = (((grid - centre) / np.array([15.0, 13.0, 18.0])[:, None, None, None]) ** 2).sum(0) < 1.0
    image = np.where(head, 100.0, 0.0) + rng.rayleigh(3.0, head.shape)  # noisy background
    image[18:23, 15:20, 10:14] = 0.0  # a dark cavity inside the head: filled
    image = image.astype(np.float32)
    smooth = gaussian_smooth(image, sigma=1.0, workers=workers)
    assert np.array_equal(smooth, ndimage.gaussian_filter(image, sigma=1.0))
    ours = head_mask_of(image, workers=workers)
    assert np.array_equal(ours, old_head_mask(image))
    assert ours[20, 17, 12] and not ours[0, 0, 0] and 0.5 < ours.sum() / head.sum() < 1.5


def test_resample_doctests() -> None:
    import doctest

    from engine.segmentation import resample

    failures, tried = doctest.testmod(resample, raise_on_error=False, verbose=False)[:2]
    assert tried >= 2 and failures == 0


def test_preprocess_doctests() -> None:
    import doctest

    from engine.segmentation import alignment, input_kind, preprocess, threads

    for module, at_least in ((preprocess, 4), (threads, 2), (alignment, 1), (input_kind, 2)):
        failures, tried = doctest.testmod(module, raise_on_error=False, verbose=False)[:2]
        assert tried >= at_least and failures == 0, module.__name__
