"""Which voxels may drive the similarity: everything except tumour/cavity labels (dilated)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from engine.types import Volume

#: default margin around tumour/cavity labels excluded from the similarity.
DEFAULT_EXCLUSION_MARGIN_MM = 5.0


def keep_mask(
    *, image: Volume, labels: Volume | None, margin_mm: float = DEFAULT_EXCLUSION_MARGIN_MM
) -> np.ndarray:
    """Boolean array on ``image``'s grid: True where a voxel may drive the similarity.

    Voxels with any label > 0 (NETC, SNFH, ET, RC), grown by ``margin_mm`` in millimetres (the
    grid's anisotropic spacing is honoured), are False. ``labels=None`` keeps every voxel.
    """
    shape = image.array.shape
    if labels is None:
        return np.ones(shape, dtype=bool)
    if labels.array.shape != shape:
        msg = f"Argument 'labels' must be on the image grid {shape}, got shape {labels.array.shape}"
        raise ValueError(msg)
    if not np.allclose(labels.affine, image.affine, atol=1e-3):
        msg = "Argument 'labels' must share the image affine (resample the labels first)"
        raise ValueError(msg)
    if margin_mm < 0:
        msg = f"Argument 'margin_mm' must be >= 0, got {margin_mm}"
        raise ValueError(msg)
    lesion = labels.array > 0
    keep = np.ones(shape, dtype=bool)
    if not lesion.any():
        return keep
    spacing = np.asarray(image.spacing_mm)
    pad = np.ceil(margin_mm / spacing).astype(int) + 1
    idx = np.argwhere(lesion)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    distance = ndimage.distance_transform_edt(~lesion[box], sampling=spacing)
    keep[box] = distance > margin_mm
    return keep
