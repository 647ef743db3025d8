"""World-space trilinear resampling, separable when the two grids are axis-aligned to each other.

MONAI's ``SpatialResample`` builds a full sampling grid (``affine_grid``) and gathers eight
neighbours per output voxel (``grid_sample``). When every axis of the target grid runs along
one axis of the source grid (a scaling, flip, permutation and shift: the usual case of an axial
or sagittal acquisition against an RAS working grid), trilinear interpolation factorises into
three 1-D linear interpolations, one per axis, each a gather of two slabs. The result is the
same (zero padding outside the source, voxel centres at integer indices), at a fraction of the
time. Oblique geometry (any rotation other than a multiple of 90 degrees) goes through MONAI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: an entry of the voxel-to-voxel matrix counts as zero below this (relative to its column).
AXIS_ALIGNED_TOLERANCE = 1e-6


def axis_alignment(source_affine: np.ndarray, target_affine: np.ndarray) -> list[tuple[int, float, float]] | None:
    """Per target axis: (source axis, scale, offset) with ``src = scale * index + offset``; or None.

    None when the target grid is not axis-aligned to the source grid.

    >>> axis_alignment(np.diag([2.0, 2.0, 2.0, 1.0]), np.diag([1.0, 1.0, 1.0, 1.0]))
    [(0, 0.5, 0.0), (1, 0.5, 0.0), (2, 0.5, 0.0)]
    """
    m = np.linalg.inv(np.asarray(source_affine, dtype=np.float64)) @ np.asarray(target_affine, dtype=np.float64)
    a = m[:3, :3]
    out = []
    used = set()
    for d in range(3):
        column = np.abs(a[:, d])
        s = int(column.argmax())
        if column[s] == 0.0 or s in used:
            return None
        if np.any(np.delete(column, s) > AXIS_ALIGNED_TOLERANCE * column[s]):
            return None
        used.add(s)
        out.append((s, float(a[s, d]), float(m[s, 3])))
    return out


def _interp_axis(data: torch.Tensor, axis: int, positions: np.ndarray) -> torch.Tensor:
    """Linear interpolation of ``data`` along ``axis`` at float ``positions`` (zeros outside)."""
    import torch

    n = data.shape[axis]
    lo = np.floor(positions).astype(np.int64)
    frac = (positions - lo).astype(np.float32)
    out = None
    for index, weight in ((lo, 1.0 - frac), (lo + 1, frac)):
        valid = (index >= 0) & (index < n)
        w = np.where(valid, weight, 0.0).astype(np.float32)
        if not w.any():
            continue
        taken = torch.index_select(data, axis, torch.from_numpy(np.clip(index, 0, n - 1)))
        shape = [1] * data.ndim
        shape[axis] = len(positions)
        term = taken * torch.from_numpy(w).reshape(shape)
        out = term if out is None else out.add_(term)
    if out is None:
        shape = list(data.shape)
        shape[axis] = len(positions)
        out = torch.zeros(shape, dtype=data.dtype)
    return out


def resample_world(
    data: torch.Tensor,
    *,
    source_affine: np.ndarray,
    target_affine: np.ndarray,
    shape: tuple[int, ...],
    mode: str = "bilinear",
) -> torch.Tensor:
    """(C, X, Y, Z) on the source grid -> (C, *shape) on the target grid, world space, zeros outside.

    Bilinear (trilinear) between axis-aligned grids runs separably; anything else through
    MONAI ``SpatialResample``.
    """
    import torch

    data = data.float()
    alignment = axis_alignment(source_affine, target_affine) if mode == "bilinear" else None
    if alignment is None:
        from monai.data import MetaTensor
        from monai.transforms import SpatialResample

        src = MetaTensor(data, affine=torch.as_tensor(source_affine, dtype=torch.float64))
        out = SpatialResample(mode=mode, padding_mode="zeros", dtype=torch.float32)(
            src, dst_affine=torch.as_tensor(target_affine, dtype=torch.float64), spatial_size=tuple(shape)
        )
        return out.as_tensor().float()
    # shrink first: interpolate the axes in the order that makes the intermediate smallest
    order = sorted(range(3), key=lambda d: shape[d] / data.shape[1 + alignment[d][0]])
    out = data
    for d in order:
        s, scale, offset = alignment[d]
        out = _interp_axis(out, 1 + s, scale * np.arange(shape[d], dtype=np.float64) + offset)
    # out's axis 1 + s holds target axis d; bring them into target order
    source_of = [alignment[d][0] for d in range(3)]
    return out.permute(0, *(1 + s for s in source_of)).contiguous()
