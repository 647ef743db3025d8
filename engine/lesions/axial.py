"""The axial view of a label volume: which voxel axis is "slices", and in-plane geometry in mm.

Measurement follows the acquisition grid (clinical-spec 5.2 step 2) without resampling: the voxel
axis whose direction is closest to superior-inferior is taken as the slice axis, and its angle to
S-I is recorded (``obliquity_deg``; 0 for a true axial acquisition). For a sagittal or coronal
3D acquisition this measures in the plane of the grid closest to axial, which is what an
observer scrolling that series in the axial-most reformat would see without interpolation.
In-plane distances use the true (possibly anisotropic, even non-orthogonal) in-plane axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.types import Volume


@dataclass(frozen=True, slots=True, eq=False)
class AxialView:
    """``array[a, b, s]``: s indexes axial slices; ``plane_mm @ (a, b)`` gives in-plane mm."""

    array: np.ndarray
    axes: tuple[int, int, int]  # original voxel axes that became (a, b, s)
    plane_mm: np.ndarray  # 2x2 upper-triangular: orthonormal in-plane mm coordinates of (a, b)
    slice_thickness_mm: float
    obliquity_deg: float
    voxel_ml: float

    def to_original(self, labels: np.ndarray) -> np.ndarray:
        """Put an array of this view back on the original voxel order."""
        return np.transpose(labels, np.argsort(self.axes))


def axial_view(volume: Volume, *, slice_thickness_mm: float | None = None) -> AxialView:
    """Reorder ``volume`` so its last axis runs across axial slices (closest to S-I).

    ``slice_thickness_mm`` overrides the spacing along that axis (DICOM SliceThickness can exceed
    the spacing when slices overlap or have gaps); otherwise ``volume.metadata['slice_thickness_mm']``
    is used when present, else the spacing.
    """
    columns = volume.affine[:3, :3]
    norms = np.linalg.norm(columns, axis=0)
    if np.any(norms <= 0):
        msg = f"Argument 'volume' has a degenerate affine (voxel sizes {norms.tolist()})"
        raise ValueError(msg)
    s_axis = int(np.argmax(np.abs(columns[2, :]) / norms))
    obliquity = float(np.degrees(np.arccos(min(1.0, abs(columns[2, s_axis]) / norms[s_axis]))))
    a_axis, b_axis = (axis for axis in range(3) if axis != s_axis)
    _, r = np.linalg.qr(columns[:, [a_axis, b_axis]])
    r = r * np.sign(np.diag(r))[:, None]  # positive diagonal
    thickness = slice_thickness_mm or volume.metadata.get("slice_thickness_mm") or float(norms[s_axis])
    return AxialView(
        array=np.transpose(volume.array, (a_axis, b_axis, s_axis)),
        axes=(a_axis, b_axis, s_axis),
        plane_mm=r,
        slice_thickness_mm=float(thickness),
        obliquity_deg=obliquity,
        voxel_ml=volume.voxel_ml,
    )
