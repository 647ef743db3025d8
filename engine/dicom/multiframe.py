"""Enhanced (multi-frame) images: one instance that holds every slice of a series.

The geometry of each frame lives in functional groups: per frame
(PerFrameFunctionalGroupsSequence) or shared by all frames (SharedFunctionalGroupsSequence):
PlanePositionSequence > ImagePositionPatient, PlaneOrientationSequence >
ImageOrientationPatient, PixelMeasuresSequence > PixelSpacing / SliceThickness and
PixelValueTransformationSequence > RescaleSlope / RescaleIntercept. A per-frame value wins over
a shared one. The frames then go through the same stack validation as single-frame slices, so a
multi-frame instance holding several stacks (echoes, time points) is refused as "not a single
3D volume".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.dicom.geometry import acquisition_plane, series_refusal

_ORIENTATION_TOLERANCE = 1e-3


@dataclass(frozen=True, slots=True, eq=False)
class FrameGeometry:
    """Per-frame geometry and rescale values of a multi-frame instance, in frame order."""

    positions_mm: np.ndarray  # (frames, 3) LPS
    orientation: np.ndarray  # (6,) shared by every frame
    pixel_spacing_mm: tuple[float, float]  # DICOM order: row spacing, column spacing
    slice_thickness_mm: float | None
    slopes: np.ndarray  # (frames,)
    intercepts: np.ndarray  # (frames,)


def number_of_frames(ds: Any) -> int:
    """NumberOfFrames, 1 when absent or empty."""
    value = ds.get("NumberOfFrames")
    return int(value) if value not in (None, "") else 1


def frame_geometry(ds: Any, *, label: str, exam: str | None = None) -> FrameGeometry:
    """Read the per-frame geometry of an enhanced instance; refuse what is missing or mixed."""
    frames = number_of_frames(ds)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared_items = ds.get("SharedFunctionalGroupsSequence") or []
    shared = shared_items[0] if len(shared_items) else None
    if len(per_frame) != frames:
        reason = (
            f"the multi-frame instance has {frames} frames but {len(per_frame)} per-frame "
            "functional group items, so the position of each frame is unknown"
        )
        raise series_refusal(label, reason, exam=exam)
    try:
        positions = np.array(
            [_floats(_value(item, shared, "PlanePositionSequence", "ImagePositionPatient"), 3,
                     "ImagePositionPatient") for item in per_frame]
        )  # fmt: skip
        orientations = np.array(
            [_floats(_value(item, shared, "PlaneOrientationSequence", "ImageOrientationPatient"),
                     6, "ImageOrientationPatient") for item in per_frame]
        )  # fmt: skip
        spacing = _floats(
            _value(per_frame[0], shared, "PixelMeasuresSequence", "PixelSpacing"), 2, "PixelSpacing"
        )
        thickness = _value(per_frame[0], shared, "PixelMeasuresSequence", "SliceThickness")
        slopes, intercepts = _rescale(ds, per_frame, shared)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        reason = f"unreadable multi-frame geometry ({exc})"
        raise series_refusal(label, reason, exam=exam, detail=repr(exc)) from exc
    if np.max(np.abs(orientations - orientations[0])) > _ORIENTATION_TOLERANCE:
        planes = "/".join(sorted({acquisition_plane(o) for o in orientations}))
        reason = f"mixed orientations: the frames are not parallel ({planes})"
        raise series_refusal(label, reason, exam=exam)
    return FrameGeometry(
        positions_mm=positions,
        orientation=orientations[0],
        pixel_spacing_mm=(spacing[0], spacing[1]),
        slice_thickness_mm=float(thickness) if thickness not in (None, "") else None,
        slopes=slopes,
        intercepts=intercepts,
    )


def _value(per_frame_item: Any, shared: Any, sequence_keyword: str, keyword: str) -> Any:
    for item in (per_frame_item, shared):
        if item is None:
            continue
        sequence = item.get(sequence_keyword)
        if sequence and len(sequence) and sequence[0].get(keyword) not in (None, ""):
            return sequence[0].get(keyword)
    return None


def _floats(value: Any, count: int, keyword: str) -> list[float]:
    if value is None:
        msg = f"{keyword} is missing from the functional groups"
        raise ValueError(msg)
    values = [float(v) for v in value]
    if len(values) != count:
        msg = f"{keyword} has {len(values)} values instead of {count}"
        raise ValueError(msg)
    return values


def _rescale(ds: Any, per_frame: Any, shared: Any) -> tuple[np.ndarray, np.ndarray]:
    slopes, intercepts = [], []
    for item in per_frame:
        slope = _value(item, shared, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _value(item, shared, "PixelValueTransformationSequence", "RescaleIntercept")
        slope = slope if slope is not None else ds.get("RescaleSlope")
        intercept = intercept if intercept is not None else ds.get("RescaleIntercept")
        slopes.append(float(slope) if slope not in (None, "") else 1.0)
        intercepts.append(float(intercept) if intercept not in (None, "") else 0.0)
    return np.array(slopes), np.array(intercepts)
