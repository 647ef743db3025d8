"""Slice-stack geometry: sort slices, validate the stack, build the voxel-to-world affine.

Conventions (documented once, used everywhere):

* DICOM gives, per slice, ImagePositionPatient (the centre of the first transmitted pixel, LPS+
  mm), ImageOrientationPatient (the direction cosines of a row, then of a column, LPS+) and
  PixelSpacing (*row spacing*, *column spacing*: the distance between rows, then between columns).
* The volume array is indexed ``[i, j, k]`` = ``[column, row, slice]`` (NIfTI convention), so
  voxel ``(i, j, k)`` lies at ``P_0 + i * Δc * X + j * Δr * Y + k * S`` in LPS, where X and Y are
  the row and column direction cosines, Δc the column spacing, Δr the row spacing, P_0 the
  position of the first slice along the slice normal ``N = X × Y`` and S the mean step between
  consecutive slice positions (``N * thickness`` for a single slice).
* The affine returned is RAS+: ``A_ras = diag(-1, -1, 1, 1) @ A_lps``.

Everything here is pure numpy on plain arrays; refusals are :class:`InvalidSeriesError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import InvalidSeriesError

#: LPS -> RAS for homogeneous coordinates.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: tolerance on |row|, |col| - 1 and row . col (direction cosines).
COSINE_TOLERANCE = 1e-3
#: a stack whose slice direction leans more than this off the slice normal is tilted.
TILT_TOLERANCE_DEG = 0.5
#: two slices closer than this along the normal share a position.
DUPLICATE_TOLERANCE_MM = 1e-3
#: a step differing from the median step by more than max(these) is inconsistent.
SPACING_TOLERANCE_MM = 0.02
SPACING_TOLERANCE_FRACTION = 0.02
#: plausible voxel sizes.
MIN_SPACING_MM = 0.01
MAX_SPACING_MM = 50.0

_ACTION = (
    "The series was not converted. Re-export it as one regular stack of parallel, equally "
    "spaced slices (or reconstruct it on the scanner) and send it again."
)


@dataclass(frozen=True, slots=True, eq=False)
class StackGeometry:
    """Where every voxel of a validated slice stack lies."""

    order: tuple[int, ...]  # input indices sorted along the slice normal
    affine: np.ndarray  # 4x4, RAS+ mm
    slice_spacing_mm: float
    acquisition_plane: str  # AX, COR or SAG


def series_refusal(
    label: str, reason: str, *, exam: str | None = None, detail: str | None = None
) -> InvalidSeriesError:
    """The error a refused series raises (the caller raises it): label, reason, next step."""
    return InvalidSeriesError(
        f"{label} refused: {reason}", exam=exam, action=_ACTION, detail=detail
    )


def acquisition_plane(orientation: np.ndarray) -> str:
    """AX, COR or SAG from the slice normal of a 6-value ImageOrientationPatient.

    >>> acquisition_plane(np.array([1.0, 0, 0, 0, 1, 0]))
    'AX'
    >>> acquisition_plane(np.array([0.0, 1, 0, 0, 0, -1]))
    'SAG'
    """
    normal = np.cross(orientation[:3], orientation[3:])
    return ("SAG", "COR", "AX")[int(np.argmax(np.abs(normal)))]


def check_orientation(orientation: np.ndarray, label: str, *, exam: str | None = None) -> None:
    """Refuse direction cosines that are not two perpendicular unit vectors."""
    row, col = orientation[:3], orientation[3:]
    norms = (float(np.linalg.norm(row)), float(np.linalg.norm(col)))
    if not np.all(np.isfinite(orientation)) or any(
        abs(n - 1.0) > COSINE_TOLERANCE for n in norms
    ):
        reason = (
            f"ImageOrientationPatient {orientation.tolist()} does not hold two unit vectors "
            f"(lengths {norms[0]:.4f}, {norms[1]:.4f})"
        )
        raise series_refusal(label, reason, exam=exam)
    dot = float(row @ col)
    if abs(dot) > COSINE_TOLERANCE:
        angle = float(np.degrees(np.arccos(np.clip(dot / norms[0] / norms[1], -1, 1))))
        reason = f"row and column directions are not perpendicular ({angle:.2f} deg apart)"
        raise series_refusal(label, reason, exam=exam)


def stack_geometry(
    *,
    positions_mm: np.ndarray,
    orientation: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    slice_thickness_mm: float | None,
    label: str,
    exam: str | None = None,
) -> StackGeometry:
    """Sort slices along their normal, validate the stack and build its RAS+ affine.

    ``positions_mm`` is ``(n, 3)`` ImagePositionPatient (LPS); ``orientation`` the 6 shared
    direction cosines; ``pixel_spacing_mm`` DICOM's (row spacing, column spacing).
    """
    check_orientation(orientation, label, exam=exam)
    row_spacing, col_spacing = pixel_spacing_mm
    for name, value in (("row", row_spacing), ("column", col_spacing)):
        if not MIN_SPACING_MM <= value <= MAX_SPACING_MM:
            reason = f"implausible {name} spacing {value:g} mm in PixelSpacing"
            raise series_refusal(label, reason, exam=exam)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    normal = normal / np.linalg.norm(normal)
    along = positions_mm @ normal
    order = np.argsort(along, kind="stable")
    positions = positions_mm[order]
    along = along[order]
    if len(positions) == 1:
        thickness = slice_thickness_mm if slice_thickness_mm and slice_thickness_mm > 0 else 1.0
        step = normal * thickness
    else:
        step = _validated_step(positions, along, normal, label, exam)
    spacing = float(np.linalg.norm(step)) if len(positions) > 1 else float(step @ normal)
    if not MIN_SPACING_MM <= spacing <= MAX_SPACING_MM:
        raise series_refusal(label, f"implausible slice spacing {spacing:g} mm", exam=exam)
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * col_spacing
    affine_lps[:3, 1] = col_dir * row_spacing
    affine_lps[:3, 2] = step
    affine_lps[:3, 3] = positions[0]
    return StackGeometry(
        order=tuple(int(i) for i in order),
        affine=LPS_TO_RAS @ affine_lps,
        slice_spacing_mm=spacing,
        acquisition_plane=acquisition_plane(orientation),
    )


def _validated_step(
    positions: np.ndarray,
    along: np.ndarray,
    normal: np.ndarray,
    label: str,
    exam: str | None,
) -> np.ndarray:
    """The mean step between sorted slices, after refusing irregular stacks."""
    steps = np.diff(along)
    duplicated = steps <= DUPLICATE_TOLERANCE_MM
    if np.any(duplicated):
        n_distinct = int(np.count_nonzero(~duplicated)) + 1
        reason = (
            f"{len(positions)} images but only {n_distinct} distinct slice position(s): "
            "several images share a position (repeated acquisitions, echoes or time points?), "
            "so this is not a single 3D volume"
        )
        raise series_refusal(label, reason, exam=exam)
    span = positions[-1] - positions[0]
    cos_tilt = float(abs(span @ normal) / np.linalg.norm(span))
    tilt_deg = float(np.degrees(np.arccos(np.clip(cos_tilt, -1.0, 1.0))))
    if tilt_deg > TILT_TOLERANCE_DEG:
        reason = (
            f"gantry tilt of {tilt_deg:.1f} deg: slices are not orthogonal to the slice "
            "direction (the stack is sheared)"
        )
        raise series_refusal(label, reason, exam=exam)
    median = float(np.median(steps))
    tolerance = max(SPACING_TOLERANCE_MM, SPACING_TOLERANCE_FRACTION * median)
    for index, value in enumerate(steps):
        if abs(value - median) <= tolerance:
            continue
        ratio = value / median
        where = f"between slice positions {along[index]:.2f} mm and {along[index + 1]:.2f} mm"
        if ratio > 1.5 and abs(ratio - round(ratio)) * median <= tolerance:
            missing = round(ratio) - 1
            reason = (
                f"missing slices: a gap of {value:.2f} mm {where} where the spacing is "
                f"{median:.2f} mm ({missing} slice(s) missing)"
            )
        else:
            reason = (
                f"inconsistent slice spacing: {value:.2f} mm {where} where the spacing is "
                f"{median:.2f} mm elsewhere"
            )
        raise series_refusal(label, reason, exam=exam)
    mean_step = span / (len(positions) - 1)
    deviation = positions - (positions[0] + np.outer(np.arange(len(positions)), mean_step))
    along_dev = deviation @ normal
    in_plane_mm = float(np.max(np.linalg.norm(deviation - np.outer(along_dev, normal), axis=1)))
    if in_plane_mm > tolerance:
        reason = (
            f"slice positions do not lie on one line (a slice is {in_plane_mm:.2f} mm off the "
            "line through the first and last slice)"
        )
        raise series_refusal(label, reason, exam=exam)
    drift_mm = float(np.max(np.abs(along_dev)))
    if drift_mm > max(tolerance, 0.1 * median):
        reason = (
            f"irregular slice spacing: a slice lies {drift_mm:.2f} mm from where a regular "
            f"stack of {median:.2f} mm spacing puts it"
        )
        raise series_refusal(label, reason, exam=exam)
    return mean_step
