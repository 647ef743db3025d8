"""The RANO line pairs on the image: where each lesion's d1 and d2 were measured, drawn on the slice.

Pure (numpy + scikit-image). The store keeps both diameters' ends as world-mm points on the axial
slice they were measured on (``lesions.d1_p0 .. d2_p1``, see ``engine.store.schema_reader``), in
the space of the label grid measured: the baseline space for a follow-up. This module maps them
onto a displayed RAS-ordered volume of the same world (:func:`segments_on_slice`), finds the
slice to show (:func:`measured_slice`) and draws them on the displayed RGB image
(:func:`draw_segments`): d1 in cyan, d2 in violet; a new lesion a reader drew, whose ends are kept
with the reader's value (``reader_values.d1_p0 ..``), in :data:`READER_COLOURS`. :func:`world_of_display` is the same mapping
inverted, for diameters a reader measures by clicking on the slice (:mod:`dashboard.click_diameters`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from skimage.draw import line

from dashboard.slices import Plane
from engine.types import Volume

D1_COLOUR = (0, 255, 255)
D2_COLOUR = (150, 90, 255)
#: a new lesion a reader drew on the image (a lesion the model missed): d1 deep pink, d2 light pink
READER_COLOURS = ((255, 20, 147), (255, 182, 193))
Pixel = tuple[float, float]  # (row, column) of the displayed slice, continuous


@dataclass(frozen=True, slots=True)
class DrawnLesion:
    lesion_index: int
    d1: tuple[Pixel, Pixel]
    d2: tuple[Pixel, Pixel] | None


def _point(value: object) -> np.ndarray | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return np.asarray(json.loads(value) if isinstance(value, str) else value, dtype=float)


def _voxel(volume: Volume, world: np.ndarray) -> np.ndarray:
    return (np.linalg.inv(volume.affine) @ np.append(world, 1.0))[:3]


def _display(volume: Volume, voxel: np.ndarray) -> Pixel:
    """Axial display (row, column) of a RAS voxel (``slices.extract_slice``: array[::-1, ::-1, k].T)."""
    nx, ny = volume.array.shape[:2]
    return (float(ny - 1 - voxel[1]), float(nx - 1 - voxel[0]))


def display_of_world(volume: Volume, world: np.ndarray) -> tuple[Pixel, float]:
    """The axial display pixel (row, column) of a world point, and its (continuous) slice index."""
    voxel = _voxel(volume, np.asarray(world, dtype=float))
    return _display(volume, voxel), float(voxel[2])


def world_of_display(volume: Volume, pixel: Pixel, index: float) -> np.ndarray:
    """World mm of the displayed axial pixel (row, column) on slice ``index``: the inverse of
    :func:`display_of_world`.

    >>> import numpy as np
    >>> vol = Volume(np.zeros((4, 3, 2)), np.diag([2.0, 2.0, 5.0, 1.0]))
    >>> world_of_display(vol, (0.0, 0.0), 1).tolist()  # top left: the largest x and y voxel
    [6.0, 4.0, 5.0]
    >>> display_of_world(vol, world_of_display(vol, (1.5, 2.0), 1))
    ((1.5, 2.0), 1.0)
    """
    nx, ny = volume.array.shape[:2]
    voxel = np.array([nx - 1 - float(pixel[1]), ny - 1 - float(pixel[0]), float(index), 1.0])
    return (np.asarray(volume.affine, dtype=float) @ voxel)[:3]


def measured_slice(row: Mapping[str, object], volume: Volume) -> int | None:
    """The axial slice index of ``volume`` (RAS order) where the lesion ``row`` was measured."""
    start = _point(row.get("d1_p0"))
    if start is None:
        return None
    k = int(round(float(_voxel(volume, start)[2])))
    return k if 0 <= k < volume.array.shape[2] else None


def segments_on_slice(rows: Iterable[Mapping[str, object]], volume: Volume, plane: Plane,
                      index: int) -> list[DrawnLesion]:
    """The lesions of ``rows`` measured on axial slice ``index`` of ``volume``, in display pixels.
    Only the axial plane shows them (they were measured on axial slices)."""
    if Plane(plane) is not Plane.AXIAL:
        return []
    out = []
    for row in rows:
        ends = [_point(row.get(k)) for k in ("d1_p0", "d1_p1", "d2_p0", "d2_p1")]
        if ends[0] is None or ends[1] is None:
            continue
        vox = [_voxel(volume, p) if p is not None else None for p in ends]
        if abs(float(vox[0][2]) - index) > 0.5:
            continue
        d2 = (_display(volume, vox[2]), _display(volume, vox[3])) if vox[2] is not None and vox[3] is not None else None
        out.append(DrawnLesion(int(row["lesion_index"]), (_display(volume, vox[0]), _display(volume, vox[1])), d2))
    return out


def draw_segments(rgb: np.ndarray, lesions: Iterable[DrawnLesion], *, slice_shape: tuple[int, int],
                  width_px: int = 2, colours: tuple[tuple[int, int, int], tuple[int, int, int]] = (D1_COLOUR, D2_COLOUR),
                  ) -> np.ndarray:
    """A copy of ``rgb`` (the displayed slice, possibly rescaled from ``slice_shape``) with each
    lesion's d1 and d2 drawn. Pixel centres of the slice map to the centres of their scaled blocks."""
    out = np.array(rgb, copy=True)
    rows, cols = out.shape[:2]
    scale_r, scale_c = rows / slice_shape[0], cols / slice_shape[1]

    def scaled(p: Pixel) -> tuple[int, int]:
        return (int(round((p[0] + 0.5) * scale_r - 0.5)), int(round((p[1] + 0.5) * scale_c - 0.5)))

    for lesion in lesions:
        for segment, colour in zip((lesion.d1, lesion.d2), colours, strict=True):
            if segment is None:
                continue
            (r0, c0), (r1, c1) = scaled(segment[0]), scaled(segment[1])
            rr, cc = line(r0, c0, r1, c1)
            for dr in range(-(width_px // 2), width_px - width_px // 2):
                keep = (rr + dr >= 0) & (rr + dr < rows) & (cc >= 0) & (cc < cols)
                out[rr[keep] + dr, cc[keep]] = colour
                keep = (rr >= 0) & (rr < rows) & (cc + dr >= 0) & (cc + dr < cols)
                out[rr[keep], cc[keep] + dr] = colour
    return out
