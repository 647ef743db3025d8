"""Put a label volume back onto the frames of the DICOM series it was computed on.

A DICOM Segmentation that references its source images frame by frame must hold, for every
source frame, the labels of exactly that frame. GlioWatch's labels are a
:class:`~engine.types.Volume` on the T1c grid (``array[i, j, k]`` = column, row, slice; RAS+
affine). This module rebuilds the grid of the source series from its headers alone (no pixel
decoding) with the same code the ingest uses (:func:`engine.dicom.geometry.stack_geometry`),
refuses labels that are not on it, and returns the label planes in the order of the source
instances (single-frame series) or frames (one multi-frame instance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.dicom.geometry import series_refusal, stack_geometry
from engine.dicom.multiframe import frame_geometry, number_of_frames
from engine.dicom.reader import READ_ERRORS
from engine.dicom.sop_classes import split_series_objects
from engine.dicom.volume import series_label
from engine.errors import WriteBackError
from engine.types import Label, Volume

#: how far (mm) the label grid may put a corner voxel from where the source series puts it:
#: well above float32 rounding of a NIfTI round trip, far below any voxel size.
GRID_TOLERANCE_MM = 0.01
_LABEL_VALUES = frozenset({0, *(int(label) for label in Label)})
_ACTION = (
    "Nothing was written back. Write the labels of this study's own segmentation, which lie on "
    "the grid of its post-contrast T1 series, and give that series as the source."
)


@dataclass(frozen=True, slots=True, eq=False)
class SourceFrames:
    """The label planes in source order, and the source images they belong to."""

    images: tuple[Any, ...]  # the image instances (non-image objects left out)
    planes: np.ndarray  # (frames, rows, columns) uint8, plane f = source instance/frame f
    slice_to_frame: tuple[int, ...] = ()  # label slice k (array[:, :, k]) is source frame slice_to_frame[k]

    @property
    def multi_frame(self) -> bool:
        """Whether the frames are those of one multi-frame instance (else one instance per frame)."""
        return len(self.images) == 1 and len(self.slice_to_frame) > 1


def labels_on_source_frames(
    source_datasets: Sequence[Any], labels: Volume, *, exam: str | None = None
) -> SourceFrames:
    """Check that ``labels`` lie on the grid of ``source_datasets`` and reorder them by frame."""
    images = split_series_objects(source_datasets).images
    if not images:
        msg = (
            "The source series holds no image: a segmentation must reference the images it was "
            "computed on"
        )
        raise WriteBackError(msg, exam=exam, action=_ACTION)
    label = series_label(images[0])
    multi = len(images) == 1 and number_of_frames(images[0]) > 1
    rows, columns = int(images[0].Rows), int(images[0].Columns)
    if multi:
        frames = frame_geometry(images[0], label=label, exam=exam)
        positions, orientation = frames.positions_mm, frames.orientation
        spacing, thickness = frames.pixel_spacing_mm, frames.slice_thickness_mm
    else:
        positions, orientation, spacing, thickness = _single_frame_geometry(images, label, exam)
    geometry = stack_geometry(
        positions_mm=positions, orientation=orientation, pixel_spacing_mm=spacing,
        slice_thickness_mm=thickness, label=label, exam=exam,
    )  # fmt: skip
    expected_shape = (columns, rows, len(positions))
    if labels.array.shape != expected_shape:
        msg = (
            f"The labels are not on the grid of {label}: they have shape {labels.array.shape} "
            f"(columns, rows, slices) where the series has {expected_shape}"
        )
        raise WriteBackError(msg, exam=exam, action=_ACTION)
    offset_mm = _corner_offset_mm(labels.affine, geometry.affine, expected_shape)
    if offset_mm > GRID_TOLERANCE_MM:
        msg = (
            f"The labels are not on the grid of {label}: a corner voxel lies {offset_mm:.3f} mm "
            f"from where the series puts it (tolerance {GRID_TOLERANCE_MM} mm)"
        )
        detail = f"labels affine\n{labels.affine}\nsource affine\n{geometry.affine}"
        raise WriteBackError(msg, exam=exam, action=_ACTION, detail=detail)
    values = {int(v) for v in np.unique(labels.array)}
    if not values <= _LABEL_VALUES:
        unknown = sorted(values - _LABEL_VALUES)
        msg = f"The labels hold values {unknown} that are no GlioWatch label (0-4)"
        raise WriteBackError(msg, exam=exam, action=_ACTION)
    planes = np.zeros((len(positions), rows, columns), dtype=np.uint8)
    for k, source_index in enumerate(geometry.order):
        planes[source_index] = labels.array[:, :, k].T  # rows along j, columns along i
    order = tuple(int(source_index) for source_index in geometry.order)
    return SourceFrames(images=tuple(images), planes=planes, slice_to_frame=order)


def _single_frame_geometry(
    images: Sequence[Any], label: str, exam: str | None
) -> tuple[np.ndarray, np.ndarray, tuple[float, float], float | None]:
    """Positions, the shared orientation, pixel spacing and thickness of single-frame images."""
    try:
        positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in images])
        orientations = np.array(
            [[float(v) for v in ds.ImageOrientationPatient] for ds in images]
        )
        spacing = tuple(float(v) for v in images[0].PixelSpacing)
        shapes = {(int(ds.Rows), int(ds.Columns)) for ds in images}
        thickness = images[0].get("SliceThickness")
    except READ_ERRORS as exc:
        reason = f"unreadable geometry attribute ({exc})"
        raise series_refusal(label, reason, exam=exam, detail=repr(exc)) from exc
    if positions.shape[1:] != (3,) or orientations.shape[1:] != (6,) or len(spacing) != 2:
        reason = "malformed ImagePositionPatient, ImageOrientationPatient or PixelSpacing"
        raise series_refusal(label, reason, exam=exam)
    if len(shapes) > 1 or np.max(np.abs(orientations - orientations[0])) > 1e-3:
        reason = "the images differ in size or orientation: not one stack of slices"
        raise series_refusal(label, reason, exam=exam)
    thickness_mm = float(thickness) if thickness else None
    return positions, orientations[0], (spacing[0], spacing[1]), thickness_mm


def _corner_offset_mm(
    affine: np.ndarray, expected: np.ndarray, shape: tuple[int, int, int]
) -> float:
    """The largest distance between where two affines put the 8 corner voxels of ``shape``."""
    ends = [(0, n - 1) for n in shape]
    corners = np.array([[i, j, k, 1.0] for i in ends[0] for j in ends[1] for k in ends[2]])
    offsets = (corners @ affine.T - corners @ expected.T)[:, :3]
    return float(np.max(np.linalg.norm(offsets, axis=1)))
