"""ET lesions: 3D connected components (26-connectivity) measured bidimensionally (clinical-spec 5.2).

Each component is measured on every axial slice it touches, after a 2D opening with a disc of
``opening_mm`` (clinical-spec 5.2 step 1: thin enhancing rims along a cavity are not measurable
disease); the slice with the largest d1 x d2 product is kept ("RANO-literal": d1 is that slice's longest chord, d2 conditional on it).
Slices too small to beat the best product so far are skipped (``_best_slice``: the same result).
Measurable (8.2): d1 and d2 both >= m (10 mm, or 2 x slice thickness above 5 mm) and the lesion
visible on >= ``meas_min_slices`` axial slices. Only ET is measured: the caller passes the ET
mask, so cavity (RC) and necrosis (NETC) never count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from engine.arrays import bounding_box
from engine.criteria import MeasurabilityCriteria
from engine.lesions.axial import AxialView
from engine.lesions.bidimensional import NO_DIAMETERS, SliceDiameters, measure_slice

_FULL_26 = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True, slots=True)
class Lesion:
    """One ET component. ``slice_index`` counts axial slices of the :class:`AxialView`."""

    lesion_index: int  # its value in the component label array (1..n)
    volume_ml: float
    n_slices: int
    d1_mm: float
    d2_mm: float
    slice_index: int
    measurable: bool
    note: str  # why it is (not) measurable, with the numbers
    #: chord ends of d1 and d2 as (a, b) pixel coordinates of the view's slice ``slice_index``
    #: (None: no chord); ``engine.measurement.lesion_segments`` turns them into world mm.
    d1_ends: tuple[tuple[float, float], tuple[float, float]] | None = None
    d2_ends: tuple[tuple[float, float], tuple[float, float]] | None = None

    @property
    def product_mm2(self) -> float:
        return self.d1_mm * self.d2_mm


def find_lesions(
    et_mask: np.ndarray, *, view: AxialView, criteria: MeasurabilityCriteria
) -> tuple[np.ndarray, tuple[Lesion, ...]]:
    """Component labels (same axis order as ``et_mask``, i.e. the view's) and measured lesions.

    Components smaller than ``criteria.min_component_ml`` are dropped (label 0).
    """
    if et_mask.shape != view.array.shape:
        msg = f"Argument 'et_mask' must have the view's shape {view.array.shape}, got {et_mask.shape}"
        raise ValueError(msg)
    mask = et_mask.astype(bool)
    out = np.zeros(mask.shape, dtype=np.int32)
    if not mask.any():
        return out, ()
    # components are labelled inside the mask's bounding box: the same numbering (raster order is
    # kept inside a box) at a fraction of a whole-grid pass
    crop = tuple(slice(int(lo), int(hi)) for lo, hi in zip(*bounding_box(mask), strict=True))
    labels, count = ndimage.label(mask[crop], structure=_FULL_26)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = np.flatnonzero(sizes * view.voxel_ml >= criteria.min_component_ml)
    keep = keep[keep > 0]
    remap = np.zeros(count + 1, dtype=np.int32)
    remap[keep] = np.arange(1, len(keep) + 1, dtype=np.int32)
    out[crop] = remap[labels]
    labels = out
    boxes = [tuple(slice(b.start + c.start, b.stop + c.start) for b, c in zip(box, crop, strict=True))
             for box in ndimage.find_objects(out[crop])]
    lesions = []
    min_mm = criteria.min_diameter_mm(view.slice_thickness_mm)
    for index, box in enumerate(boxes, start=1):
        component = labels[box] == index
        best, best_slice = _best_slice(component, view, criteria)
        n_slices = int(np.count_nonzero(component.any(axis=(0, 1))))
        measurable = best.d1_mm >= min_mm and best.d2_mm >= min_mm and n_slices >= criteria.meas_min_slices
        note = (f"d1 {best.d1_mm:.1f} mm x d2 {best.d2_mm:.1f} mm on {n_slices} slice(s); measurable needs both "
                f">= {min_mm:g} mm on >= {criteria.meas_min_slices} slices")
        lesions.append(Lesion(
            lesion_index=index,
            volume_ml=float(np.count_nonzero(component)) * view.voxel_ml,
            n_slices=n_slices,
            d1_mm=best.d1_mm,
            d2_mm=best.d2_mm,
            slice_index=best_slice + box[2].start,
            measurable=bool(measurable),
            note=note,
            d1_ends=_shifted(best.d1_ends, box),
            d2_ends=_shifted(best.d2_ends, box),
        ))
    return labels, tuple(lesions)


def _shifted(ends: tuple[tuple[float, float], tuple[float, float]] | None,
             box: tuple[slice, ...]) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Chord ends measured inside a component's bounding box, in the whole view's pixel coordinates."""
    if ends is None:
        return None
    da, db = float(box[0].start), float(box[1].start)
    return ((ends[0][0] + da, ends[0][1] + db), (ends[1][0] + da, ends[1][1] + db))


def _best_slice(component: np.ndarray, view: AxialView, criteria: MeasurabilityCriteria, *,
                exhaustive: bool = False) -> tuple[SliceDiameters, int]:
    """The slice with the largest d1 x d2 product, slices tried from the largest area down.

    A slice whose in-plane extent cannot hold a product above the best so far is not measured:
    d2 <= d1 <= the longest segment in the pixels' bounding box (one pixel wider, for the 0.5
    contour), so when that segment's square is below the best product the slice cannot win, and
    the result is the one measuring every slice would give (``exhaustive``: measure every slice,
    for tests).
    """
    best, best_slice = NO_DIAMETERS, 0
    footprint = opening_footprint(view.plane_mm, criteria.opening_mm)
    areas = component.sum(axis=(0, 1))
    rows_any, cols_any = component.any(axis=1), component.any(axis=0)  # (a, slice), (b, slice)
    for s in np.argsort(-areas, kind="stable"):
        if areas[s] == 0:
            break
        if not exhaustive and best.product_mm2 > 0:
            rows, cols = np.flatnonzero(rows_any[:, s]), np.flatnonzero(cols_any[:, s])
            extent_a, extent_b = rows[-1] - rows[0] + 1.0, cols[-1] - cols[0] + 1.0
            longest = max(np.hypot(*(view.plane_mm @ (extent_a, extent_b))),
                          np.hypot(*(view.plane_mm @ (extent_a, -extent_b))))
            if longest * longest * (1.0 + 1e-9) < best.product_mm2:
                continue
        plane = component[:, :, s]
        if footprint is not None:
            pad = max(footprint.shape)
            plane = ndimage.binary_opening(np.pad(plane, pad), structure=footprint)[pad:-pad, pad:-pad]
            if not plane.any():
                continue
        found = measure_slice(plane, plane_mm=view.plane_mm,
                              inside_fraction=criteria.inside_fraction,
                              tolerance_deg=criteria.perpendicular_tolerance_deg)
        if found.product_mm2 > best.product_mm2 or (best.product_mm2 == 0 and found.d1_mm > best.d1_mm):
            best, best_slice = found, int(s)
    return best, best_slice


def opening_footprint(plane_mm: np.ndarray, radius_mm: float) -> np.ndarray | None:
    """A disc of ``radius_mm`` in physical in-plane units (None when 0 or smaller than a pixel)."""
    if radius_mm <= 0:
        return None
    spacing = np.abs(np.diag(plane_mm))
    half = np.floor(radius_mm / spacing).astype(int)
    if half.max() < 1:
        return None
    a, b = np.mgrid[-half[0] : half[0] + 1, -half[1] : half[1] + 1]
    points = np.stack([a, b], axis=-1) @ plane_mm.T
    return np.hypot(points[..., 0], points[..., 1]) <= radius_mm + 1e-6


def select_targets(lesions: tuple[Lesion, ...], *, n_target_max: int) -> tuple[int, ...]:
    """Lesion indices of the targets: measurable lesions ranked by product, at most ``n_target_max``."""
    measurable = sorted((l for l in lesions if l.measurable), key=lambda l: (-l.product_mm2, l.lesion_index))
    return tuple(l.lesion_index for l in measurable[:n_target_max])


def sum_of_products(lesions: tuple[Lesion, ...], indices: tuple[int, ...]) -> float:
    """SPD (mm²) over the given lesion indices."""
    chosen = set(indices)
    return float(sum(l.product_mm2 for l in lesions if l.lesion_index in chosen))
