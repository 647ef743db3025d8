"""Pure geometry of registration transforms (numpy only, no I/O).

Conventions used across :mod:`engine.registration`:

* World coordinates are **RAS+ millimetres** (as :class:`engine.types.Volume` affines).
* A registration ``matrix`` is a 4x4 homogeneous matrix that maps a point of the **moving**
  scan's world to the same anatomical point in the **fixed** scan's world
  (``x_fixed = matrix @ x_moving``).
* SimpleITK works in LPS+ and its transforms map **fixed** physical points to **moving** ones (the
  "pull" direction used for resampling). :func:`ras_from_sitk_transform` converts one to ours:
  ``matrix = F @ inv(T_lps) @ F`` with ``F = diag(-1, -1, 1, 1)``.
"""

from __future__ import annotations

import numpy as np

#: RAS <-> LPS flip (its own inverse): ``x_lps = LPS_FROM_RAS @ x_ras``.
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def rigid_matrix(
    *,
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0),
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
    center_mm: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """A 4x4 rigid transform: rotations about x, then y, then z (degrees) around ``center_mm``,
    then a translation.

    >>> m = rigid_matrix(rotation_deg=(0, 0, 90))
    >>> np.round(m @ [1, 0, 0, 1], 6).tolist()
    [0.0, 1.0, 0.0, 1.0]
    >>> rigid_matrix(translation_mm=(1, 2, 3))[:3, 3].tolist()
    [1.0, 2.0, 3.0]
    """
    ax, ay, az = np.deg2rad(rotation_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    rotation = rz @ ry @ rx
    center = np.asarray(center_mm, dtype=float)
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = center - rotation @ center + np.asarray(translation_mm, dtype=float)
    return out


def nearest_rotation(linear: np.ndarray) -> np.ndarray:
    """The rotation closest to a 3x3 linear map (polar decomposition via SVD)."""
    u, _, vt = np.linalg.svd(np.asarray(linear, dtype=float)[:3, :3])
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        u[:, -1] *= -1
        rotation = u @ vt
    return rotation


def rotation_angle_deg(matrix: np.ndarray) -> float:
    """Angle (degrees) of the rotation part of a 4x4 transform (nearest rotation if affine).

    >>> round(rotation_angle_deg(rigid_matrix(rotation_deg=(0, 0, 90), translation_mm=(5, 0, 0))), 6)
    90.0
    """
    rotation = nearest_rotation(np.asarray(matrix)[:3, :3])
    cos_angle = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.rad2deg(np.arccos(cos_angle)))


def displacement_at_mm(matrix: np.ndarray, point_mm: np.ndarray) -> float:
    """How far (mm) the transform moves one point: ``|matrix @ p - p|``.

    >>> displacement_at_mm(rigid_matrix(translation_mm=(3, 4, 0)), np.zeros(3))
    5.0
    """
    p = np.append(np.asarray(point_mm, dtype=float)[:3], 1.0)
    return float(np.linalg.norm((np.asarray(matrix, dtype=float) @ p - p)[:3]))


def scale_deviation(matrix: np.ndarray) -> float:
    """Largest relative departure of the singular values of the linear part from 1 (0 if rigid).

    >>> scale_deviation(np.diag([1.1, 1.0, 0.95, 1.0]))
    0.1
    """
    singular = np.linalg.svd(np.asarray(matrix, dtype=float)[:3, :3], compute_uv=False)
    return float(np.round(np.max(np.abs(singular - 1.0)), 12))


def volume_center_mm(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """World coordinates (mm) of the centre of a voxel grid."""
    center_index = (np.asarray(shape[:3], dtype=float) - 1.0) / 2.0
    return (np.asarray(affine, dtype=float) @ np.append(center_index, 1.0))[:3]


def voxel_map(*, reference_affine: np.ndarray, moving_affine: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """4x4 map from reference voxel indices to moving voxel indices ("pull" resampling).

    A reference voxel ``v`` sits at world ``A_ref @ v`` in the fixed/reference world; the same
    anatomy sits at ``inv(matrix) @ A_ref @ v`` in the moving world, i.e. at moving voxel
    ``inv(A_mov) @ inv(matrix) @ A_ref @ v``.
    """
    return np.linalg.inv(moving_affine) @ np.linalg.inv(matrix) @ np.asarray(reference_affine, dtype=float)


def displacement_error_mm(*, estimated: np.ndarray, truth: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
    """Per-point distance (mm) between where the estimated and the true moving->fixed transforms
    put the moving-world anatomy that lies at ``points_mm`` (N x 3, fixed world).

    Computed in the fixed world: ``|truth @ inv(estimated) @ x - x|`` for each fixed point x, i.e.
    how far a structure resampled with the estimate lands from where it truly belongs.

    >>> t = rigid_matrix(translation_mm=(1, 0, 0))
    >>> displacement_error_mm(estimated=np.eye(4), truth=t, points_mm=np.zeros((2, 3))).tolist()
    [1.0, 1.0]
    """
    residual = np.asarray(truth, dtype=float) @ np.linalg.inv(np.asarray(estimated, dtype=float))
    pts = np.asarray(points_mm, dtype=float).reshape(-1, 3)
    moved = pts @ residual[:3, :3].T + residual[:3, 3]
    return np.linalg.norm(moved - pts, axis=1)


def ras_from_sitk_transform(sitk_fixed_to_moving_lps: np.ndarray) -> np.ndarray:
    """Convert a SimpleITK transform (4x4, LPS, fixed point -> moving point) to our ``matrix``
    (4x4, RAS, moving point -> fixed point).

    >>> t_lps = rigid_matrix(translation_mm=(5, 0, 0))  # fixed p -> moving p + 5 mm toward L
    >>> ras_from_sitk_transform(t_lps)[:3, 3].tolist()  # moving p -> fixed p + 5 mm toward R
    [5.0, 0.0, 0.0]
    """
    return LPS_FROM_RAS @ np.linalg.inv(np.asarray(sitk_fixed_to_moving_lps, dtype=float)) @ LPS_FROM_RAS
