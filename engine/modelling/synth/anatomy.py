"""A synthetic head built from the MNI152 2009 template that ships inside the nilearn wheel.

The nilearn template is skull-stripped, so the tissues outside the brain (cerebrospinal fluid
over the convexity, the inner and outer tables of the skull with the diploic marrow between
them, the temporalis/galea, scalp fat and skin) are added as smooth layers around the
intracranial envelope. Everything is expressed as *fractions* per voxel on a regular grid in
template space (RAS+ millimetres), so partial volume survives resampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import numpy as np
from scipy import ndimage

#: template grid padding (voxels at 1 mm) added below the template so the skull base fits.
_PAD_BELOW_MM = 16
_PAD_SIDES_MM = 4


class Tissue(StrEnum):
    """Normal tissue classes of the synthetic head."""

    WM = "WM"
    GM = "GM"
    CSF = "CSF"
    BONE = "BONE"  # cortical bone of the inner and outer tables (no MR signal)
    MARROW = "MARROW"  # diploic fatty marrow
    MUSCLE = "MUSCLE"  # galea / temporalis
    FAT = "FAT"  # subcutaneous scalp fat
    SKIN = "SKIN"


#: (inner, outer) distance from the intracranial envelope, millimetres, for each outer layer.
_LAYERS_MM: tuple[tuple[Tissue, float, float], ...] = (
    (Tissue.BONE, 1.0, 3.0),
    (Tissue.MARROW, 3.0, 5.5),
    (Tissue.BONE, 5.5, 7.0),
    (Tissue.MUSCLE, 7.0, 8.5),
    (Tissue.FAT, 8.5, 12.0),
    (Tissue.SKIN, 12.0, 13.5),
)


@dataclass(frozen=True, slots=True, eq=False)
class HeadModel:
    """Tissue fractions of one synthetic head on a regular template-space grid.

    ``affine`` maps grid indices (i, j, k, 1) to template coordinates in millimetres (RAS+).
    ``fractions[t]`` is float32 in [0, 1]; the fractions of a voxel sum to at most 1 (the rest
    is air). ``t1_detail`` is the part of the real template T1 signal that the tissue fractions
    do not explain (deep grey nuclei, cortical ribbon, ...), used as anatomical texture.
    """

    spacing_mm: float
    affine: np.ndarray
    fractions: dict[Tissue, np.ndarray]
    t1_detail: np.ndarray
    intracranial: np.ndarray  # bool, inside the skull

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.t1_detail.shape  # type: ignore[return-value]

    @property
    def brain(self) -> np.ndarray:
        """Parenchyma fraction (grey + white matter)."""
        return self.fractions[Tissue.GM] + self.fractions[Tissue.WM]

    def grid_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Template coordinates of the grid axes (x along i, y along j, z along k)."""
        origin = self.affine[:3, 3]
        return tuple(  # type: ignore[return-value]
            origin[a] + self.spacing_mm * np.arange(n, dtype=np.float32)
            for a, n in enumerate(self.shape)
        )

    def center_mm(self) -> np.ndarray:
        """Centre of the intracranial envelope in template coordinates."""
        idx = np.argwhere(self.intracranial).mean(axis=0)
        return (self.affine @ np.append(idx, 1.0))[:3]


def _load_template_1mm() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(t1, gm, wm) as float32 in [0, 1] and the 1 mm affine; no network (data in the wheel)."""
    from nilearn.datasets import (
        load_mni152_gm_template,
        load_mni152_template,
        load_mni152_wm_template,
    )

    t1_img = load_mni152_template(resolution=1)
    t1 = np.asarray(t1_img.dataobj, dtype=np.float32)
    gm = np.asarray(load_mni152_gm_template(resolution=1).dataobj, dtype=np.float32)
    wm = np.asarray(load_mni152_wm_template(resolution=1).dataobj, dtype=np.float32)
    t1 /= max(float(t1.max()), 1e-6)
    return t1, np.clip(gm, 0, 1), np.clip(wm, 0, 1), np.asarray(t1_img.affine, dtype=np.float64)


@lru_cache(maxsize=4)
def build_head(*, spacing_mm: float = 2.0) -> HeadModel:
    """Build (and cache) the synthetic head on an isotropic grid of ``spacing_mm``."""
    if not 0.5 <= spacing_mm <= 6.0:
        msg = f"Argument 'spacing_mm' must be within [0.5, 6], got {spacing_mm}"
        raise ValueError(msg)
    t1, gm, wm, affine = _load_template_1mm()
    pad = ((_PAD_SIDES_MM, _PAD_SIDES_MM), (_PAD_SIDES_MM, _PAD_SIDES_MM), (_PAD_BELOW_MM, 0))
    t1, gm, wm = (np.pad(a, pad) for a in (t1, gm, wm))
    affine = affine.copy()
    affine[:3, 3] -= affine[:3, :3] @ np.array([_PAD_SIDES_MM, _PAD_SIDES_MM, _PAD_BELOW_MM])
    if spacing_mm != 1.0:
        t1, gm, wm, affine = _resample(t1, gm, wm, affine, spacing_mm)
    return _assemble(t1=t1, gm=gm, wm=wm, affine=affine, spacing_mm=spacing_mm)


def _resample(
    t1: np.ndarray, gm: np.ndarray, wm: np.ndarray, affine: np.ndarray, spacing_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    factor = 1.0 / spacing_mm
    sigma = max(0.0, (spacing_mm - 1.0) / 2.355)  # box-like anti-aliasing: partial volume
    out = []
    for a in (t1, gm, wm):
        if sigma > 0:
            a = ndimage.gaussian_filter(a, sigma)
        out.append(ndimage.zoom(a, factor, order=1, grid_mode=True, mode="grid-constant"))
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] * spacing_mm
    # grid_mode zoom keeps the outer edges of the field of view aligned
    new_affine[:3, 3] = affine[:3, 3] + affine[:3, :3] @ np.full(3, (spacing_mm - 1.0) / 2.0)
    return out[0], out[1], out[2], new_affine


def _assemble(
    *, t1: np.ndarray, gm: np.ndarray, wm: np.ndarray, affine: np.ndarray, spacing_mm: float
) -> HeadModel:
    parenchyma = np.clip(gm + wm, 0.0, 1.0)
    scale = np.where(parenchyma > 1e-3, 1.0 / np.maximum(gm + wm, 1.0), 1.0)
    gm, wm = gm * scale, wm * scale
    sigma_vox = 3.0 / spacing_mm
    solid = (t1 > 0.02) | (parenchyma > 0.2)
    envelope = ndimage.gaussian_filter(solid.astype(np.float32), sigma_vox) > 0.3
    envelope = ndimage.binary_fill_holes(envelope)
    outside_mm = ndimage.distance_transform_edt(~envelope).astype(np.float32) * spacing_mm
    inside_mm = ndimage.distance_transform_edt(envelope).astype(np.float32) * spacing_mm
    signed_mm = np.where(envelope, -inside_mm + 0.5 * spacing_mm, outside_mm - 0.5 * spacing_mm)
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0) * _band(signed_mm, -1e4, 1.0, spacing_mm)
    fractions: dict[Tissue, np.ndarray] = {
        Tissue.WM: wm.astype(np.float32),
        Tissue.GM: gm.astype(np.float32),
        Tissue.CSF: csf.astype(np.float32),
    }
    for tissue, inner, outer in _LAYERS_MM:
        layer = _band(signed_mm, inner, outer, spacing_mm) * (1.0 - gm - wm)
        fractions[tissue] = (fractions.get(tissue, 0.0) + layer).astype(np.float32)
    total = sum(fractions.values())
    excess = np.maximum(total, 1.0)  # soft layer edges may overlap by a little
    fractions = {t: (f / excess).astype(np.float32) for t, f in fractions.items()}
    expected_t1 = 0.87 * wm + 0.65 * gm + 0.27 * csf  # template medians
    brainish = parenchyma > 0.05
    detail = np.where(brainish, np.clip(t1 - expected_t1, -0.2, 0.2), 0.0).astype(np.float32)
    return HeadModel(
        spacing_mm=float(spacing_mm),
        affine=affine,
        fractions=fractions,
        t1_detail=detail,
        intracranial=signed_mm < 1.0,
    )


def _band(signed_mm: np.ndarray, inner: float, outer: float, spacing_mm: float) -> np.ndarray:
    """Soft membership of ``inner <= d < outer`` with a one-voxel linear edge."""
    width = max(spacing_mm, 0.5)
    rise = np.clip((signed_mm - inner) / width + 0.5, 0.0, 1.0)
    fall = np.clip((outer - signed_mm) / width + 0.5, 0.0, 1.0)
    return (rise * fall).astype(np.float32)
