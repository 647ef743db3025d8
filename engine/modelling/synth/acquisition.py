"""Acquisition: the voxel grid of a series in scanner coordinates, resampling with partial
volume across the slice thickness, a smooth bias field and Rician noise.

Grids are scanner-aligned (the head pose shows as a tilt in the images). Directions follow the
DICOM conventions, expressed in RAS+: axial slices have columns toward the patient's left and
rows toward posterior with slices ascending; sagittal slices have columns toward posterior,
rows toward inferior and slices toward the patient's right; coronal columns toward left, rows
toward inferior, slices toward posterior.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import ndimage


class Plane(StrEnum):
    AX = "AX"
    SAG = "SAG"
    COR = "COR"


#: RAS+ unit vectors of (column i, row j, slice k) per plane.
_DIRECTIONS: dict[Plane, np.ndarray] = {
    Plane.AX: np.array([[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]).T,
    Plane.SAG: np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]).T,
    Plane.COR: np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]]).T,
}


@dataclass(frozen=True, slots=True, eq=False)
class AcquisitionGrid:
    """Voxel grid of one series: ``affine`` maps (i, j, k, 1) to scanner world (RAS+ mm)."""

    plane: Plane
    affine: np.ndarray
    shape: tuple[int, int, int]
    slice_thickness_mm: float

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """(column spacing, row spacing), i.e. along i and along j."""
        norms = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(norms[0]), float(norms[1])

    @property
    def slice_spacing_mm(self) -> float:
        return float(np.linalg.norm(self.affine[:3, 2]))


def plan_grid(
    *,
    plane: Plane,
    center_mm: np.ndarray,
    fov_mm: tuple[float, float, float],
    pixel_mm: float,
    slice_spacing_mm: float,
    slice_thickness_mm: float,
) -> AcquisitionGrid:
    """A grid of ``fov_mm`` (in-plane columns, rows, through-plane) centred on ``center_mm``."""
    if pixel_mm <= 0 or slice_spacing_mm <= 0 or slice_thickness_mm <= 0:
        msg = f"Voxel sizes must be > 0, got {pixel_mm}, {slice_spacing_mm}, {slice_thickness_mm}"
        raise ValueError(msg)
    shape = (
        max(2, round(fov_mm[0] / pixel_mm)),
        max(2, round(fov_mm[1] / pixel_mm)),
        max(2, round(fov_mm[2] / slice_spacing_mm)),
    )
    spacing = np.array([pixel_mm, pixel_mm, slice_spacing_mm])
    affine = np.eye(4)
    affine[:3, :3] = _DIRECTIONS[plane] * spacing
    half = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    affine[:3, 3] = np.asarray(center_mm, dtype=float) - affine[:3, :3] @ half
    return AcquisitionGrid(plane=plane, affine=affine, shape=shape,
                           slice_thickness_mm=float(slice_thickness_mm))


def resample(
    image: np.ndarray,
    *,
    image_affine: np.ndarray,
    world_to_image_space: np.ndarray,
    grid: AcquisitionGrid,
    order: int = 1,
    slice_profile: bool = True,
) -> np.ndarray:
    """Sample ``image`` (on a grid with ``image_affine`` in its own space) on ``grid``.

    ``world_to_image_space`` maps scanner world to the image's space (the inverse head pose).
    With ``slice_profile`` the value of a voxel is the mean over its slice thickness
    (partial volume); in-plane the image is low-pass filtered to the target pixel size.
    """
    index = np.linalg.inv(image_affine) @ world_to_image_space @ grid.affine
    source_mm = float(np.mean(np.linalg.norm(image_affine[:3, :3], axis=0)))
    if order > 0:
        sigma = max(0.0, (grid.pixel_spacing_mm[0] / source_mm - 1.0) / 2.355)
        if sigma > 0.2:
            image = ndimage.gaussian_filter(image, sigma)
    n_sub = 1
    if slice_profile and order > 0:
        n_sub = max(1, int(np.ceil(grid.slice_thickness_mm / (1.5 * source_mm))))
    thickness_k = grid.slice_thickness_mm / grid.slice_spacing_mm
    out = np.zeros(grid.shape, dtype=np.float32)
    for m in range(n_sub):
        dk = 0.0 if n_sub == 1 else thickness_k * ((m + 0.5) / n_sub - 0.5)
        offset = index[:3, 3] + index[:3, 2] * dk
        out += ndimage.affine_transform(
            image, index[:3, :3], offset=offset, output_shape=grid.shape, order=order,
            mode="constant", cval=0.0, prefilter=False,
        ).astype(np.float32)
    return out / np.float32(n_sub)


def bias_field(grid_shape: tuple[int, int, int], rng: np.random.Generator,
               *, strength: float = 0.2) -> np.ndarray:
    """Smooth multiplicative field ``exp(s * p)`` with ``p`` a random quadratic in [-1, 1]^3."""
    axes = [np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in grid_shape]
    x, y, z = axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]
    c = rng.uniform(-1.0, 1.0, size=9).astype(np.float32)
    poly = (c[0] * x + c[1] * y + c[2] * z + 0.5 * (c[3] * x * x + c[4] * y * y + c[5] * z * z)
            + 0.5 * (c[6] * x * y + c[7] * y * z + c[8] * x * z))
    return np.exp(np.float32(strength / 2.0) * poly).astype(np.float32)


def add_rician_noise(image: np.ndarray, rng: np.random.Generator, *, sigma: float) -> np.ndarray:
    """Magnitude of the image plus complex Gaussian noise of standard deviation ``sigma``."""
    if sigma <= 0:
        return image.astype(np.float32)
    scale = np.float32(sigma)
    real = image + scale * rng.standard_normal(image.shape, dtype=np.float32)
    imag = scale * rng.standard_normal(image.shape, dtype=np.float32)
    return np.sqrt(real * real + imag * imag).astype(np.float32)
