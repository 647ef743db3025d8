"""ET lesions: 3D connected components (26-connectivity) measured bidimensionally (clinical-spec 5.2).

Each component is measured on every axial slice it touches, after a 2D opening with a disc of
``opening_mm`` (clinical-spec 5.2 step 1: thin enhancing rims along a cavity are not measurable
disease); the slice with the largest d1 x d2 product is kept ("RANO-literal": d1 is that slice's longest chord, d2 conditional on it).
Measurable (8.2): d1 and d2 both >= m (10 mm, or 2 x slice thickness above 5 mm) and the lesion
visible on >= ``meas_min_slices`` axial slices. Only ET is measured: the caller passes the ET
mask, so cavity (RC) and necrosis (NETC) never count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

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
    #: the diameters' endpoints on ``slice_index``, in the view's in-plane pixel coordinates (a, b):
    #: (d1 start, d1 end) then (d2 start, d2 end) when d2 was found; () when not measured
    ends_px: tuple[tuple[float, float], ...] = ()

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
    labels, count = ndimage.label(et_mask.astype(bool), structure=_FULL_26)
    if count == 0:
        return labels.astype(np.int32), ()
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = np.flatnonzero(sizes * view.voxel_ml >= criteria.min_component_ml)
    keep = keep[keep > 0]
    remap = np.zeros(count + 1, dtype=np.int32)
    remap[keep] = np.arange(1, len(keep) + 1, dtype=np.int32)
    labels = remap[labels]
    boxes = ndimage.find_objects(labels)
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
            ends_px=_offset_ends(best, box),
        ))
    return labels, tuple(lesions)


def _offset_ends(found: SliceDiameters, box: tuple[slice, ...]) -> tuple[tuple[float, float], ...]:
    """The endpoints of ``found`` (pixel coordinates inside ``box``) in the whole view's (a, b)."""
    a0, b0 = box[0].start, box[1].start
    pairs = [pair for pair in (found.d1_ends, found.d2_ends) if pair is not None]
    return tuple((float(a) + a0, float(b) + b0) for pair in pairs for a, b in pair)


def _best_slice(component: np.ndarray, view: AxialView, criteria: MeasurabilityCriteria) -> tuple[SliceDiameters, int]:
    best, best_slice = NO_DIAMETERS, 0
    footprint = opening_footprint(view.plane_mm, criteria.opening_mm)
    areas = component.sum(axis=(0, 1))
    for s in np.argsort(-areas, kind="stable"):
        if areas[s] == 0:
            break
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
