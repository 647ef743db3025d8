"""Training cases on the fly (no DICOM): four co-registered sequences and their labels.

``sample_training_case(seed)`` draws a patient (tumour site and shape), a scenario and a visit
of it, renders T1, T1c, T2 and FLAIR on the head grid (RAS+, isotropic ``spacing_mm``) and
applies domain randomisation: contrast jitter per class, a bias field, Rician noise and,
with some probability, a thick-slice degradation along a random axis. Labels stay on the
fine grid (a perfect segmenter would recover them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from engine.synth.acquisition import add_rician_noise, bias_field
from engine.synth.anatomy import build_head
from engine.synth.contrast import render_sequence
from engine.synth.scenarios import Scenario, plan_patient
from engine.synth.tumour import build_field, render, sample_geometry
from engine.types import STUDY_SEQUENCES


@dataclass(frozen=True, slots=True, eq=False)
class TrainingCase:
    """One training example: ``images`` (4, X, Y, Z) float32 in channel order T1, T1c, T2,
    FLAIR; ``labels`` (X, Y, Z) uint8 (BraTS 2024 numbering); ``affine`` RAS+ 4x4 (mm)."""

    images: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    scenario: str
    visit_index: int
    phase: str
    volumes_ml: dict[str, float]


def sample_training_case(
    seed: int,
    *,
    spacing_mm: float = 2.0,
    contrast_jitter: float = 0.08,
    noise_range: tuple[float, float] = (0.01, 0.05),
    bias_strength: float = 0.3,
    thick_slice_probability: float = 0.3,
    slice_thickness_range_mm: tuple[float, float] = (3.0, 6.0),
    scenario: Scenario | str | None = None,
    visit_index: int | None = None,
    normalize: bool = True,
) -> TrainingCase:
    """Draw one case, deterministic for ``seed``. ``scenario`` / ``visit_index`` fix the
    timepoint (default random); ``normalize`` scales each channel to mean 0, std 1 in the head.
    """
    rng = np.random.default_rng([int(seed), 0x5EED])
    head = build_head(spacing_mm=float(spacing_mm))
    chosen = Scenario(scenario) if scenario is not None else Scenario(
        rng.choice([s.value for s in Scenario]))
    plan = plan_patient(patient_id="TRAIN", scenario=chosen, rng=rng, n_visits=8)
    index = int(rng.integers(len(plan.visits))) if visit_index is None else int(visit_index)
    if not 0 <= index < len(plan.visits):
        msg = f"Argument 'visit_index' must be within [0, {len(plan.visits)}), got {index}"
        raise ValueError(msg)
    visit = plan.visits[index]
    geometry = sample_geometry(head, rng, cavity_offset_mm=plan.cavity_offset_mm)
    maps = render(build_field(head, geometry), visit.state)
    channels = []
    for sequence in STUDY_SEQUENCES:
        image = render_sequence(head=head, tumour=maps, sequence=sequence, rng=rng,
                                jitter=contrast_jitter)
        if rng.random() < thick_slice_probability:
            image = _thick_slices(image, rng, spacing_mm, slice_thickness_range_mm)
        image = image * bias_field(image.shape, rng, strength=bias_strength)
        image = add_rician_noise(image, rng, sigma=float(rng.uniform(*noise_range)))
        channels.append(_normalize(image) if normalize else image)
    return TrainingCase(
        images=np.stack(channels).astype(np.float32),
        labels=maps.labels,
        affine=head.affine.copy(),
        scenario=chosen.value,
        visit_index=index,
        phase=visit.phase.value,
        volumes_ml=maps.volumes_ml(voxel_ml=head.spacing_mm**3 / 1000.0),
    )


def _thick_slices(image: np.ndarray, rng: np.random.Generator, spacing_mm: float,
                  thickness_range_mm: tuple[float, float]) -> np.ndarray:
    """Average over a slab of random thickness along a random axis and sample it back."""
    thickness = float(rng.uniform(*thickness_range_mm))
    factor = thickness / spacing_mm
    if factor <= 1.0:
        return image
    axis = int(rng.integers(3))
    size = [1, 1, 1]
    size[axis] = max(1, round(factor))
    slab = ndimage.uniform_filter(image, size=size, mode="nearest")
    zoom_down = [1.0, 1.0, 1.0]
    zoom_down[axis] = 1.0 / factor
    coarse = ndimage.zoom(slab, zoom_down, order=1, grid_mode=True, mode="nearest")
    zoom_up = [a / b for a, b in zip(image.shape, coarse.shape, strict=True)]
    return ndimage.zoom(coarse, zoom_up, order=1, grid_mode=True, mode="nearest")[
        : image.shape[0], : image.shape[1], : image.shape[2]]


def _normalize(image: np.ndarray) -> np.ndarray:
    mask = image > 0.1 * float(image.max())
    values = image[mask] if mask.any() else image
    return ((image - values.mean()) / max(float(values.std()), 1e-6)).astype(np.float32)
