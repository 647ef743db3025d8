"""Rigid head poses: 4x4 RAS+ matrices mapping template coordinates to a visit's scanner world.

Pure. The transform mapping visit b's world to visit a's world is ``pose_a @ inv(pose_b)``
(:func:`relative_pose`).

>>> import numpy as np
>>> p = rigid_pose(rotation_deg=(0.0, 0.0, 90.0), translation_mm=(1.0, 2.0, 3.0))
>>> np.round(p @ [1.0, 0.0, 0.0, 1.0], 6).tolist()
[1.0, 3.0, 3.0, 1.0]
"""

from __future__ import annotations

import numpy as np


def rotation_matrix(rotation_deg: tuple[float, float, float]) -> np.ndarray:
    """3x3 rotation about x (pitch), then y (roll), then z (yaw), angles in degrees."""
    ax, ay, az = np.deg2rad(np.asarray(rotation_deg, dtype=float))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rigid_pose(
    *, rotation_deg: tuple[float, float, float], translation_mm: tuple[float, float, float]
) -> np.ndarray:
    """4x4 rigid transform ``x -> R x + t``."""
    pose = np.eye(4)
    pose[:3, :3] = rotation_matrix(rotation_deg)
    pose[:3, 3] = np.asarray(translation_mm, dtype=float)
    return pose


def random_pose(
    rng: np.random.Generator, *, max_rotation_deg: float = 8.0, max_translation_mm: float = 10.0
) -> np.ndarray:
    """A small head-pose change: each angle and each shift uniform within the bounds."""
    angles = rng.uniform(-max_rotation_deg, max_rotation_deg, size=3)
    shifts = rng.uniform(-max_translation_mm, max_translation_mm, size=3)
    return rigid_pose(rotation_deg=tuple(angles), translation_mm=tuple(shifts))


def relative_pose(pose_a: np.ndarray, pose_b: np.ndarray) -> np.ndarray:
    """Transform mapping visit b's scanner world to visit a's: ``pose_a @ inv(pose_b)``."""
    return np.asarray(pose_a) @ np.linalg.inv(np.asarray(pose_b))


def rotation_angle_deg(transform: np.ndarray) -> float:
    """Angle of the rotation part of a rigid 4x4 transform, in degrees."""
    cos = (np.trace(np.asarray(transform)[:3, :3]) - 1.0) / 2.0
    return float(np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0))))
