"""Tumour sub-regions (BraTS 2024 labels) grown as thresholded smooth random fields.

A lesion is described once per patient (:class:`TumourGeometry`: where it sits, its shape
noise) and its size per visit (:class:`TumourState`). The "effective distance"

    d(x) = |R^T (x - c) / stretch| - a * f(x) - b * (wm(x) - 0.5)

(``f`` a smooth zero-mean random field, ``wm`` the white-matter fraction) is thresholded at the
visit's radii: enhancing tissue where ``d < enhancing_radius``, necrosis inside it (an enhancing
rim of ``rim_mm`` remains), surrounding FLAIR hyperintensity where a second field with a
stronger white-matter bias is below ``enhancing_radius + oedema_margin`` (so it spreads along
white matter and spares cortex), and the resection cavity where a third field is below
``cavity_radius``. Because the same fields are thresholded at every visit, a growing lesion
keeps its shape, and its volume is monotone in the radii.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from engine.modelling.synth.anatomy import HeadModel, Tissue
from engine.types import Label

_EDGE_MM = 0.6  # width of the soft boundary (partial volume) of the tumour regions
_CROP_HALF_MM = 64.0
_SATELLITE_HALF_MM = 32.0
_FIELD_SIGMA_MM = 6.0


@dataclass(frozen=True, slots=True)
class TumourState:
    """Sizes of one patient's tumour at one visit (millimetres of effective distance)."""

    enhancing_radius_mm: float
    rim_mm: float = 3.0
    oedema_margin_mm: float = 12.0
    cavity_radius_mm: float = 0.0
    satellite_radius_mm: float = 0.0

    def __post_init__(self) -> None:
        for name in ("enhancing_radius_mm", "rim_mm", "oedema_margin_mm", "cavity_radius_mm",
                     "satellite_radius_mm"):
            if getattr(self, name) < 0:
                msg = f"Argument '{name}' must be >= 0, got {getattr(self, name)}"
                raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class TumourGeometry:
    """Where a patient's tumour sits, in template coordinates (mm, RAS+)."""

    center_mm: tuple[float, float, float]
    stretch: tuple[float, float, float]
    rotation: tuple[tuple[float, float, float], ...]
    cavity_center_mm: tuple[float, float, float]
    satellite_center_mm: tuple[float, float, float]
    field_seed: int


@dataclass(frozen=True, slots=True, eq=False)
class TumourMaps:
    """Soft memberships (float32, in a crop of the head grid) and hard labels (full grid)."""

    crop: tuple[slice, slice, slice]
    memberships: dict[Label, np.ndarray]
    labels: np.ndarray  # uint8, full head grid

    def volumes_ml(self, *, voxel_ml: float) -> dict[str, float]:
        counts = np.bincount(self.labels[self.crop].ravel(), minlength=5)  # 0 outside crop
        return {label.name: round(float(counts[label]) * voxel_ml, 3) for label in Label}


def sample_geometry(
    head: HeadModel, rng: np.random.Generator, *, cavity_offset_mm: float | None = None
) -> TumourGeometry:
    """Pick a deep white-matter site in a cerebral hemisphere and a random shape.

    The resection cavity is centred ``cavity_offset_mm`` from the tumour toward the surface
    (the surgical corridor), so a subtotal resection leaves residual tumour on the deep side.
    """
    if cavity_offset_mm is None:
        cavity_offset_mm = float(rng.uniform(0.0, 6.0))
    x, y, z = head.grid_mm()
    wm = head.fractions[Tissue.WM]
    depth = ndimage.distance_transform_edt(head.intracranial) * head.spacing_mm
    ok = (wm > 0.8) & (depth > 28.0)
    ok &= (np.abs(x)[:, None, None] > 18.0) & (z[None, None, :] > -5.0)
    ok &= (y[None, :, None] > -85.0) & (y[None, :, None] < 45.0)
    candidates = np.argwhere(ok)
    center = _index_to_mm(head, candidates[rng.integers(len(candidates))])
    far = np.argwhere((wm > 0.8) & (depth > 15.0))
    dist = np.linalg.norm(np.array([_index_to_mm(head, v) for v in far[:: max(1, len(far) // 4000)]])
                          - center, axis=1)
    pool = far[:: max(1, len(far) // 4000)][(dist > 40.0) & (dist < 75.0)]
    satellite = _index_to_mm(head, pool[rng.integers(len(pool))]) if len(pool) else center
    outward = center - head.center_mm()
    outward /= max(float(np.linalg.norm(outward)), 1e-6)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return TumourGeometry(
        center_mm=_tuple(center),
        stretch=_tuple(rng.uniform(0.8, 1.25, size=3)),
        rotation=tuple(_tuple(row) for row in q),
        cavity_center_mm=_tuple(center + outward * cavity_offset_mm),
        satellite_center_mm=_tuple(satellite),
        field_seed=int(rng.integers(2**31)),
    )


@dataclass(frozen=True, slots=True, eq=False)
class TumourField:
    """Precomputed distance fields of one patient's tumour on a crop of the head grid."""

    head: HeadModel
    crop: tuple[slice, slice, slice]
    core_mm: np.ndarray
    necrosis_mm: np.ndarray
    oedema_mm: np.ndarray
    radius_mm: np.ndarray
    cavity_mm: np.ndarray
    satellite_mm: np.ndarray
    parenchyma: np.ndarray
    white: np.ndarray


def build_field(head: HeadModel, geometry: TumourGeometry) -> TumourField:
    """Compute the distance fields of ``geometry`` once; render visits with :func:`render`."""
    crop = _crop(head, geometry)
    x, y, z = (axis[c] for axis, c in zip(head.grid_mm(), crop, strict=True))
    pts = np.stack(np.meshgrid(x, y, z, indexing="ij"), axis=-1)
    rng = np.random.default_rng(geometry.field_seed)
    fields = [_smooth_noise(rng, pts.shape[:3], _FIELD_SIGMA_MM / head.spacing_mm)
              for _ in range(4)]
    wm = head.fractions[Tissue.WM][crop]
    brain = np.clip(head.brain[crop], 0.0, 1.0)
    rot = np.asarray(geometry.rotation)
    local = (pts - np.asarray(geometry.center_mm)) @ rot / np.asarray(geometry.stretch)
    radius = np.linalg.norm(local, axis=-1)
    core = radius - 4.0 * fields[0] - 6.0 * (wm - 0.5)
    necrosis = radius - 3.0 * fields[1] - 2.0 * (wm - 0.5)
    oedema = radius - 6.0 * fields[2] - 12.0 * (wm - 0.5)
    # the cavity follows the tumour's own shape (same field), shifted along the corridor
    cav_local = (pts - np.asarray(geometry.cavity_center_mm)) @ rot / np.asarray(geometry.stretch)
    cavity = np.linalg.norm(cav_local, axis=-1) - 4.0 * fields[0] - 6.0 * (wm - 0.5) \
        - 1.0 * fields[3]
    satellite = np.linalg.norm(pts - np.asarray(geometry.satellite_center_mm), axis=-1)
    satellite = satellite - 1.5 * fields[1]
    return TumourField(
        head=head, crop=crop, core_mm=core.astype(np.float32),
        necrosis_mm=necrosis.astype(np.float32), oedema_mm=oedema.astype(np.float32),
        radius_mm=radius.astype(np.float32),
        cavity_mm=cavity.astype(np.float32), satellite_mm=satellite.astype(np.float32),
        parenchyma=np.clip(brain / 0.5, 0.0, 1.0).astype(np.float32),
        white=np.clip(wm * 1.8, 0.0, 1.0).astype(np.float32),
    )


def render(field: TumourField, state: TumourState) -> TumourMaps:
    """Memberships and labels of the tumour of ``field`` at the sizes of ``state``."""
    inside = field.head.intracranial[field.crop].astype(np.float32)
    r_et = state.enhancing_radius_mm
    cavity = _below(field.cavity_mm, state.cavity_radius_mm) * inside
    core = _below(field.core_mm, r_et)
    necrosis = _below(field.necrosis_mm, r_et - state.rim_mm) * _below(field.core_mm, r_et - 1.5)
    reach = r_et + state.oedema_margin_mm
    oedema = _below(field.oedema_mm, reach, edge_mm=1.5) * field.white
    oedema *= _below(field.radius_mm, 1.3 * reach + 4.0, edge_mm=4.0)  # no distant islands
    if state.satellite_radius_mm > 0:
        sat = field.satellite_mm
        core = np.maximum(core, _below(sat, state.satellite_radius_mm))
        necrosis = np.maximum(necrosis, _below(sat, state.satellite_radius_mm - 4.0))
        oedema = np.maximum(oedema, _below(sat, state.satellite_radius_mm + 8.0, edge_mm=1.5)
                            * field.white)
    if r_et <= 0:
        core = necrosis = np.zeros_like(core)
        oedema = oedema * (state.oedema_margin_mm > 0)
    free = 1.0 - cavity
    m_netc = free * necrosis * field.parenchyma
    free = free - m_netc
    m_et = free * core * field.parenchyma
    free = free - m_et
    m_snfh = free * oedema * field.parenchyma
    memberships = {Label.NETC: m_netc, Label.SNFH: m_snfh, Label.ET: m_et, Label.RC: cavity}
    background = 1.0 - (m_netc + m_snfh + m_et + cavity)
    stack = np.stack([background, m_netc, m_snfh, m_et, cavity])
    labels = np.zeros(field.head.shape, dtype=np.uint8)
    labels[field.crop] = np.argmax(stack, axis=0).astype(np.uint8)
    return TumourMaps(crop=field.crop, memberships=memberships, labels=labels)


def _below(distance_mm: np.ndarray, radius_mm: float, *, edge_mm: float = _EDGE_MM) -> np.ndarray:
    """Soft indicator of ``distance < radius`` (0 everywhere when the radius is 0)."""
    if radius_mm <= 0:
        return np.zeros_like(distance_mm)
    return np.clip((radius_mm - distance_mm) / edge_mm + 0.5, 0.0, 1.0)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: float) -> np.ndarray:
    noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_vox)
    return noise / max(float(noise.std()), 1e-6)


def _crop(head: HeadModel, geometry: TumourGeometry) -> tuple[slice, slice, slice]:
    inv = np.linalg.inv(head.affine)
    lo_hi = []
    for center, half in ((geometry.center_mm, _CROP_HALF_MM),
                         (geometry.satellite_center_mm, _SATELLITE_HALF_MM)):
        c = np.asarray(center)
        lo_hi.append((inv @ np.append(c - half, 1.0))[:3])
        lo_hi.append((inv @ np.append(c + half, 1.0))[:3])
    corners = np.array(lo_hi)
    lo = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, None)
    hi = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 1, head.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


def _index_to_mm(head: HeadModel, index: np.ndarray) -> np.ndarray:
    return (head.affine @ np.append(index.astype(float), 1.0))[:3]


def _tuple(values: np.ndarray) -> tuple[float, float, float]:
    return tuple(round(float(v), 3) for v in values)  # type: ignore[return-value]
