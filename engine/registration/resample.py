"""Bring a moving volume into a reference grid with a registration matrix."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from engine.registration.geometry import voxel_map
from engine.types import Volume

Interpolation = Literal["linear", "nearest"]


def resample_to(
    *,
    reference: Volume,
    moving: Volume,
    matrix: np.ndarray,
    interpolation: Interpolation = "linear",
    fill_value: float = 0.0,
) -> Volume:
    """Resample ``moving`` onto the grid of ``reference``.

    ``matrix`` maps moving-world points to reference-world points (RAS mm), as
    :attr:`RegistrationResult.matrix`. Images use ``"linear"``; label maps must use
    ``"nearest"`` (their dtype is kept). Voxels that fall outside the moving field of view get
    ``fill_value``. The result carries the reference affine and the moving metadata.
    """
    if interpolation not in ("linear", "nearest"):
        msg = f"Argument 'interpolation' must be 'linear' or 'nearest', got {interpolation!r}"
        raise ValueError(msg)
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (4, 4):
        msg = f"Argument 'matrix' must be 4x4, got shape {matrix.shape}"
        raise ValueError(msg)
    vox = voxel_map(reference_affine=reference.affine, moving_affine=moving.affine, matrix=matrix)
    order = 1 if interpolation == "linear" else 0
    source = moving.array
    if order == 1 and not np.issubdtype(source.dtype, np.floating):
        source = source.astype(np.float32)
    out = ndimage.affine_transform(
        source,
        vox[:3, :3],
        offset=vox[:3, 3],
        output_shape=reference.array.shape,
        order=order,
        mode="constant",
        cval=fill_value,
        prefilter=False,
    )
    return Volume(array=out, affine=np.array(reference.affine, dtype=float), metadata=dict(moving.metadata))
