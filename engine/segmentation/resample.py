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


def interp_matrix(n: int, positions: np.ndarray) -> np.ndarray:
    """(len(positions), n) float32: row i holds the linear-interpolation weights of source samples
    0..n-1 at float position ``positions[i]`` (voxel centres at integers, zero outside).

    >>> interp_matrix(3, np.array([0.5, 2.0, 2.5, -1.0]))
    array([[0.5, 0.5, 0. ],
           [0. , 0. , 1. ],
           [0. , 0. , 0.5],
           [0. , 0. , 0. ]], dtype=float32)
    """
    lo = np.floor(positions).astype(np.int64)
    frac = positions - lo
    weights = np.zeros((len(positions), n), dtype=np.float64)
    rows = np.arange(len(positions))
    for index, weight in ((lo, 1.0 - frac), (lo + 1, frac)):
        valid = (index >= 0) & (index < n)
        weights[rows[valid], index[valid]] += weight[valid]
    return weights.astype(np.float32)


def _interp_axis(data: torch.Tensor, axis: int, positions: np.ndarray) -> torch.Tensor:
    """Linear interpolation of ``data`` along ``axis`` at float ``positions`` (zeros outside).

    One matrix product with the (sparse, two entries per row) interpolation matrix: measured on
    the 2-core CPU for a 240 x 240 x 168 volume, 0.05 s per axis against 0.10 / 0.36 / 1.40 s for
    two ``index_select`` gathers along axis 0 / 1 / 2 (gathers along inner axes stride through
    memory); results equal to 1 ulp (summation order).
    """
    import torch

    weights = torch.from_numpy(interp_matrix(data.shape[axis], positions))
    # contiguous before the product: the previous axis leaves a permuted layout, and a matmul
    # on that strided view runs 20-30x slower than the copy plus the product (0.6-0.8 s against
    # 0.03 s for 160 x 256 x 60 -> 176 on the 2-core CPU)
    return (data.movedim(axis, -1).contiguous() @ weights.T).movedim(-1, axis)


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
