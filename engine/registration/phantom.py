"""Registration pairs with a known transform, built from the MNI152 template (tests, benchmark).

A pair is a FIXED scan (the template, possibly with a lesion) and a MOVING scan: the same head
moved by a known rigid ``truth`` (moving world -> fixed world, our ``matrix`` convention) and
sampled on its own grid (other spacing, other field of view), with noise and possibly a lesion
that grew or a cavity that appeared. Lesions are painted in template space before the moving
scan is "acquired", so they move with the anatomy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.registration.geometry import volume_center_mm
from engine.registration.resample import resample_to
from engine.types import Label, Volume


@dataclass(frozen=True, slots=True, eq=False)
class Template:
    image: Volume  # intensities in [0, 1]
    brain: np.ndarray  # bool mask on the image grid

    def brain_points_mm(self) -> np.ndarray:
        """World coordinates (N x 3, mm) of the brain voxels."""
        index = np.argwhere(self.brain).astype(float)
        return index @ self.image.affine[:3, :3].T + self.image.affine[:3, 3]


@dataclass(frozen=True, slots=True, eq=False)
class Pair:
    name: str
    fixed: Volume
    moving: Volume
    truth: np.ndarray  # moving world -> fixed world (RAS mm)
    fixed_labels: Volume | None = None
    moving_labels: Volume | None = None


def load_template(*, spacing_mm: float = 2.0) -> Template:
    """The MNI152 template shipped with nilearn (no network), resampled to ``spacing_mm``."""
    from nilearn import datasets

    resolution = 1 if spacing_mm < 2.0 else 2
    img = datasets.load_mni152_template(resolution=resolution)
    mask = datasets.load_mni152_brain_mask(resolution=resolution)
    image = Volume(array=np.asarray(img.get_fdata(), dtype=np.float32), affine=np.asarray(img.affine, dtype=float))
    brain = Volume(array=np.asarray(mask.get_fdata()) > 0.5, affine=np.asarray(mask.affine, dtype=float))
    native = float(image.spacing_mm[0])
    if abs(spacing_mm - native) > 1e-6:
        grid = _grid(center_mm=volume_center_mm(image.affine, image.array.shape),
                     extent_mm=np.asarray(image.array.shape) * native, spacing_mm=(spacing_mm,) * 3)  # fmt: skip
        image = resample_to(reference=grid, moving=image, matrix=np.eye(4))
        brain = resample_to(reference=grid, moving=brain, matrix=np.eye(4), interpolation="nearest")
    return Template(image=image, brain=np.asarray(brain.array, dtype=bool))


def paint_sphere(
    *, image: Volume, labels: Volume | None, center_mm: np.ndarray, radius_mm: float, intensity: float, label: Label
) -> tuple[Volume, Volume]:
    """Copy of ``image`` with a sphere of ``intensity`` (and ``label`` in the label map)."""
    index = np.indices(image.array.shape).reshape(3, -1).T.astype(float)
    world = index @ image.affine[:3, :3].T + image.affine[:3, 3]
    inside = (np.linalg.norm(world - np.asarray(center_mm, dtype=float), axis=1) <= radius_mm).reshape(image.array.shape)
    array = np.array(image.array, dtype=np.float32)
    array[inside] = intensity
    label_array = np.zeros(image.array.shape, np.uint8) if labels is None else np.array(labels.array, np.uint8)
    label_array[inside] = int(label)
    return Volume(array=array, affine=image.affine), Volume(array=label_array, affine=image.affine)


def acquire(
    *,
    image: Volume,
    truth: np.ndarray,
    spacing_mm: tuple[float, float, float],
    extent_mm: tuple[float, float, float],
    noise_sd: float,
    rng: np.random.Generator,
    labels: Volume | None = None,
    dicom_axial: bool = False,
) -> tuple[Volume, Volume | None]:
    """Scan ``image`` (fixed world) again after the head moved by ``truth``.

    The moving scan's grid is centred on the fixed scan's centre (in moving-world coordinates)
    with the given spacing and extent; a moving voxel at world ``y`` shows the anatomy at
    fixed-world ``truth @ y``. Gaussian noise of ``noise_sd`` is added to the image.
    ``dicom_axial`` lays the grid out as DICOM axial slices are (i toward L, j toward P).
    """
    grid = _grid(center_mm=volume_center_mm(image.affine, image.array.shape), extent_mm=extent_mm,
                 spacing_mm=spacing_mm, flip_ij=dicom_axial)  # fmt: skip
    moved = resample_to(reference=grid, moving=image, matrix=np.linalg.inv(truth))
    noisy = moved.array + rng.normal(0.0, noise_sd, moved.array.shape).astype(np.float32)
    moved_labels = None
    if labels is not None:
        moved_labels = resample_to(reference=grid, moving=labels, matrix=np.linalg.inv(truth), interpolation="nearest")
    return Volume(array=noisy.astype(np.float32), affine=grid.affine), moved_labels


def _grid(
    *, center_mm: np.ndarray, extent_mm: np.ndarray | tuple, spacing_mm: tuple[float, float, float], flip_ij: bool = False
) -> Volume:
    spacing = np.asarray(spacing_mm, dtype=float)
    shape = tuple(int(max(2, round(e / s))) for e, s in zip(extent_mm, spacing, strict=True))
    signs = np.array([-1.0, -1.0, 1.0]) if flip_ij else np.ones(3)
    affine = np.diag([*(signs * spacing), 1.0])
    affine[:3, 3] = np.asarray(center_mm, dtype=float) - affine[:3, :3] @ ((np.asarray(shape) - 1.0) / 2.0)
    return Volume(array=np.zeros(shape, dtype=np.float32), affine=affine)
