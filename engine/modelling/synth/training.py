"""Training cases on the fly (no DICOM): four sequences and their labels.

Two samplers:

* ``sample_training_case(seed)`` draws a patient (tumour site and shape), a scenario and a visit
  of it, renders T1, T1c, T2 and FLAIR on the head grid (RAS+, isotropic ``spacing_mm``) and
  applies domain randomisation: contrast jitter per class, a bias field, Rician noise and,
  with some probability, a thick-slice degradation along a random axis. Labels stay on the
  fine grid (a perfect segmenter would recover them).
* ``sample_acquired_case(seed)`` goes one step further, through the same acquisition as the
  cohort's DICOM series (:func:`engine.modelling.synth.study.acquire`): a random head pose, and per
  sequence its own scanner grid (2D slices of random thickness and gap in a random plane, or
  an isotropic 3D block), sampled with the slice profile as partial volume, bias field and
  Rician noise, each wider than the cohort's defaults. The result is a set of series on their
  own grids, as ingestion hands them to segmentation, plus the labels on the 1 mm head grid
  and that grid's affine in scanner world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from engine.modelling.synth.acquisition import Plane, add_rician_noise, bias_field, plan_grid
from engine.modelling.synth.anatomy import build_head
from engine.modelling.synth.contrast import render_sequence
from engine.modelling.synth.pose import random_pose
from engine.modelling.synth.scenarios import Scenario, plan_patient
from engine.modelling.synth.study import acquire
from engine.modelling.synth.tumour import build_field, render, sample_geometry
from engine.types import STUDY_SEQUENCES, Sequence, Volume


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


def _draw_visit(rng: np.random.Generator, spacing_mm: float, scenario: Scenario | str | None,
                visit_index: int | None):  # noqa: ANN202
    """The patient, timepoint and tumour maps both samplers start from (``rng`` is consumed in
    this order: scenario, plan, visit, geometry; the cached training cases depend on it)."""
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
    return head, chosen, index, visit, render(build_field(head, geometry), visit.state)


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
    head, chosen, index, visit, maps = _draw_visit(rng, spacing_mm, scenario, visit_index)
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


@dataclass(frozen=True, slots=True, eq=False)
class AcquiredCase:
    """One training example as a scanner delivers it: ``volumes`` per sequence, each on its own
    scanner grid (RAS+ affine in scanner world); ``labels`` (BraTS 2024 numbering) on the
    generator's isotropic head grid, whose voxel -> scanner-world affine is ``labels_affine``."""

    volumes: dict[Sequence, Volume]
    labels: np.ndarray
    labels_affine: np.ndarray
    scenario: str
    visit_index: int
    phase: str
    volumes_ml: dict[str, float]
    protocol: str


#: probability that a sequence is an isotropic 3D acquisition (else 2D slices).
_P_3D: dict[Sequence, float] = {Sequence.T1: 0.25, Sequence.T1C: 0.55, Sequence.T2: 0.15, Sequence.FLAIR: 0.5}


def _random_grid(sequence: Sequence, center_world: np.ndarray, rng: np.random.Generator):  # noqa: ANN202
    """A scanner grid wider than the cohort's protocols: 3D 0.8-1.3 mm (sagittal mostly) or
    2D 0.45-1.2 mm pixels with 2-6.5 mm slices and 0-1.5 mm gaps (axial mostly)."""
    if rng.random() < _P_3D[sequence]:
        plane = Plane(rng.choice(["SAG", "AX", "COR"], p=[0.7, 0.2, 0.1]))
        voxel = float(rng.uniform(0.8, 1.3))
        cover = float(rng.uniform(150.0, 190.0))
        return plan_grid(plane=plane, center_mm=center_world, fov_mm=(240.0, 240.0, cover), pixel_mm=voxel,
                         slice_spacing_mm=voxel, slice_thickness_mm=voxel)
    plane = Plane(rng.choice(["AX", "COR", "SAG"], p=[0.8, 0.12, 0.08]))
    thickness = float(rng.choice([2.0, 3.0, 4.0, 5.0, 6.0, 6.5]))
    gap = float(rng.choice([0.0, 0.0, 0.5, 1.0, 1.5]))
    cover = float(rng.uniform(140.0, 180.0))
    return plan_grid(plane=plane, center_mm=center_world, fov_mm=(230.0, 230.0, cover),
                     pixel_mm=float(rng.uniform(0.45, 1.2)), slice_spacing_mm=thickness + gap,
                     slice_thickness_mm=thickness)


def sample_acquired_case(
    seed: int,
    *,
    spacing_mm: float = 1.0,
    contrast_jitter: float = 0.15,
    max_rotation_deg: float = 15.0,
    max_translation_mm: float = 12.0,
    bias_range: tuple[float, float] = (0.05, 0.5),
    noise_range: tuple[float, float] = (0.008, 0.05),
    scenario: Scenario | str | None = None,
    visit_index: int | None = None,
) -> AcquiredCase:
    """Draw one case as acquired series (see module doc); deterministic for ``seed``.

    ``spacing_mm`` is the generator's head grid (1 mm, finer than any working grid, so the
    class fractions of the targets hold partial volumes; tests use coarser grids).
    """
    rng = np.random.default_rng([int(seed), 0xAC0])
    head, chosen, index, visit, maps = _draw_visit(rng, spacing_mm, scenario, visit_index)
    pose = random_pose(rng, max_rotation_deg=max_rotation_deg, max_translation_mm=max_translation_mm)
    world_to_template = np.linalg.inv(pose)
    center_world = (pose @ np.append(head.center_mm() + [0.0, 0.0, 6.0], 1.0))[:3]
    center_world = center_world + rng.uniform(-8.0, 8.0, size=3)
    volumes: dict[Sequence, Volume] = {}
    protocol = []
    for sequence in STUDY_SEQUENCES:
        grid = _random_grid(sequence, center_world, rng)
        clean = render_sequence(head=head, tumour=maps, sequence=sequence, rng=rng, jitter=contrast_jitter)
        image = acquire(clean, head=head, world_to_template=world_to_template, grid=grid, rng=rng,
                        bias_range=bias_range, noise_range=noise_range)
        volumes[sequence] = Volume(image, grid.affine.copy())
        protocol.append(f"{sequence.value}:{grid.plane.value}{grid.slice_thickness_mm:g}")
    return AcquiredCase(
        volumes=volumes,
        labels=maps.labels,
        labels_affine=pose @ head.affine,
        scenario=chosen.value,
        visit_index=index,
        phase=visit.phase.value,
        volumes_ml=maps.volumes_ml(voxel_ml=head.spacing_mm**3 / 1000.0),
        protocol=" ".join(protocol),
    )
