"""Pure image functions for the image review page: reorient, slice, window, overlay, difference.

Display convention (radiological): axial and coronal slices show the patient's right on the
left of the screen; axial slices have anterior at the top, coronal and sagittal superior at the
top; sagittal slices have anterior on the left. Volumes are first turned to the closest RAS+
voxel order, so a slice index walks from left to right (sagittal), posterior to anterior
(coronal) or inferior to superior (axial).
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from engine.orientation import to_ras  # noqa: F401 - the pages' import path
from engine.types import Label, Volume

#: overlay colour per label (RGB).
LABEL_COLOURS: dict[Label, tuple[int, int, int]] = {
    Label.NETC: (230, 40, 40),
    Label.SNFH: (40, 200, 70),
    Label.ET: (255, 215, 0),
    Label.RC: (40, 150, 255),
}
NEW_ENHANCEMENT_COLOUR = (255, 0, 255)


class Plane(StrEnum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


#: the voxel axis a plane's slices walk along, in RAS order.
_AXIS = {Plane.SAGITTAL: 0, Plane.CORONAL: 1, Plane.AXIAL: 2}


def slice_count(shape: tuple[int, ...], plane: Plane) -> int:
    return int(shape[_AXIS[Plane(plane)]])


def extract_slice(array: np.ndarray, plane: Plane, index: int) -> np.ndarray:
    """One display-oriented 2D slice of a RAS-ordered array (rows top to bottom)."""
    plane = Plane(plane)
    n = slice_count(array.shape, plane)
    if not 0 <= index < n:
        msg = f"Argument 'index' must be in [0, {n - 1}] for the {plane} plane, got {index}"
        raise ValueError(msg)
    if plane == Plane.AXIAL:
        return array[::-1, ::-1, index].T
    if plane == Plane.CORONAL:
        return array[::-1, index, ::-1].T
    return array[index, ::-1, ::-1].T


def pixel_mm(volume: Volume, plane: Plane) -> tuple[float, float]:
    """(row height, column width) in mm of a displayed slice of a RAS-ordered volume."""
    sx, sy, sz = volume.spacing_mm
    return {Plane.AXIAL: (sy, sx), Plane.CORONAL: (sz, sx), Plane.SAGITTAL: (sz, sy)}[Plane(plane)]


def matching_index(source: Volume, target: Volume, plane: Plane, index: int) -> int:
    """The slice of ``target`` nearest in world space to slice ``index`` of ``source`` (clamped)."""
    axis = _AXIS[Plane(plane)]
    centre = (np.asarray(source.array.shape, dtype=float) - 1) / 2
    centre[axis] = index
    world = source.affine @ np.append(centre, 1.0)
    voxel = np.linalg.inv(target.affine) @ world
    return int(np.clip(round(float(voxel[axis])), 0, target.array.shape[axis] - 1))


def default_window(array: np.ndarray) -> tuple[float, float]:
    """(level, width) from 0 (or the 1st percentile when values go negative) to the 99.5th
    percentile of the non-zero voxels, so tissue is grey and only the brightest voxels saturate."""
    values = np.asarray(array, dtype=np.float32)
    values = values[values != 0]
    if values.size == 0:
        return 0.0, 1.0
    low = min(float(np.percentile(values, 1)), 0.0)
    high = float(np.percentile(values, 99.5))
    width = max(high - low, 1e-6)
    return (low + high) / 2, width


def apply_window(image: np.ndarray, *, level: float, width: float) -> np.ndarray:
    """Grey levels: ``level - width/2`` -> 0, ``level + width/2`` -> 255 (uint8)."""
    if width <= 0:
        msg = f"Argument 'width' must be > 0, got {width}"
        raise ValueError(msg)
    scaled = (np.asarray(image, dtype=np.float32) - (level - width / 2)) / width
    return (np.clip(scaled, 0.0, 1.0) * 255).round().astype(np.uint8)


def overlay(
    grey: np.ndarray,
    labels: np.ndarray | None,
    *,
    show: frozenset[Label] | set[Label] = frozenset(Label),
    alpha: float = 0.45,
    highlight: np.ndarray | None = None,
) -> np.ndarray:
    """RGB uint8 image: ``grey`` with the chosen labels blended in and ``highlight`` in magenta."""
    rgb = np.repeat(np.asarray(grey, dtype=np.float32)[..., None], 3, axis=2)
    if labels is not None:
        if labels.shape != grey.shape:
            msg = f"Argument 'labels' must have the slice's shape {grey.shape}, got {labels.shape}"
            raise ValueError(msg)
        for label in show:
            mask = labels == int(label)
            rgb[mask] = (1 - alpha) * rgb[mask] + alpha * np.asarray(LABEL_COLOURS[Label(label)])
    if highlight is not None:
        rgb[highlight] = np.asarray(NEW_ENHANCEMENT_COLOUR, dtype=np.float32)
    return rgb.round().astype(np.uint8)


def difference_rgb(before: np.ndarray, after: np.ndarray, *, width: float) -> np.ndarray:
    """Signed difference ``after - before`` as RGB: red where it rose, blue where it fell."""
    if before.shape != after.shape:
        msg = f"Arguments 'before' and 'after' must share a shape, got {before.shape} and {after.shape}"
        raise ValueError(msg)
    if width <= 0:
        msg = f"Argument 'width' must be > 0, got {width}"
        raise ValueError(msg)
    diff = np.clip((np.asarray(after, np.float32) - np.asarray(before, np.float32)) / width, -1, 1)
    rgb = np.zeros((*diff.shape, 3), dtype=np.float32)
    rgb[..., 0] = np.clip(diff, 0, 1) * 255
    rgb[..., 2] = np.clip(-diff, 0, 1) * 255
    return rgb.round().astype(np.uint8)


def new_enhancement(before_labels: np.ndarray, after_labels: np.ndarray) -> np.ndarray:
    """Voxels enhancing (ET) at the later timepoint that were not ET at the earlier one."""
    if before_labels.shape != after_labels.shape:
        msg = "Arguments 'before_labels' and 'after_labels' must share a grid (registered volumes)"
        raise ValueError(msg)
    return (after_labels == int(Label.ET)) & (before_labels != int(Label.ET))


def to_physical_aspect(rgb: np.ndarray, *, row_mm: float, col_mm: float, min_px: int = 256) -> np.ndarray:
    """Resample an RGB slice (nearest) so that pixels are square in mm, at least ``min_px`` tall."""
    rows, cols = rgb.shape[:2]
    scale = max(min_px / max(rows * row_mm, 1e-6), 1.0 / min(row_mm, col_mm))
    out_rows = max(int(round(rows * row_mm * scale)), 1)
    out_cols = max(int(round(cols * col_mm * scale)), 1)
    r_idx = np.minimum((np.arange(out_rows) * rows / out_rows).astype(int), rows - 1)
    c_idx = np.minimum((np.arange(out_cols) * cols / out_cols).astype(int), cols - 1)
    return rgb[r_idx][:, c_idx]
