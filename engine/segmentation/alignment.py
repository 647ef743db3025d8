"""Rigid alignment of a study's sequences onto its reference, when the patient moved between them.

The series of one study share a frame of reference, so their DICOM geometry already places them
in one world space; :func:`engine.segmentation.preprocess.prepare_study` trusts it. A patient who
moves between the T1c and the FLAIR (a few millimetres, a degree or two: common in a 20-minute
examination) breaks that, and a network that reads the four channels voxel by voxel sees
enhancement and oedema in the wrong places.

:func:`align_sequences` registers every other sequence rigidly onto the reference (SimpleITK,
Mattes mutual information, two coarse levels, started from the DICOM geometry, not from the
images' centres of mass, which differ between a whole-head 3D block and a slab of 2D slices). The
correction is applied only when it is *needed and trustworthy*: it moves the head by at least
``min_motion_mm`` and half a voxel of the coarser series (rotation counted at ``HEAD_RADIUS_MM``
from the centre), it passes the
registration QC, and it raises the similarity of the pair over the DICOM geometry by at least
``min_gain``. Otherwise the DICOM geometry stays. Each decision is returned with its figures and
a realigned sequence is flagged on the result (``realigned:FLAIR``), so people see it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.segmentation.threads import in_threads
from engine.types import Sequence, Volume

log = logging.getLogger(__name__)

#: rotation is turned into millimetres of motion at this distance from the centre (a head's radius).
HEAD_RADIUS_MM = 80.0
#: below this much motion the DICOM geometry is kept (the resampling grid is 1-1.5 mm); also
#: below half the largest voxel side of either (block-averaged) series, which the images cannot
#: resolve: 2.5 mm for 5 mm slices.
MIN_MOTION_MM = 1.0
#: the correction must raise the pair's entropy correlation by at least this much (motions of
#: 3-9 mm gained 0.04-0.18 in tests; registration noise on unmoved synthetic studies up to ~0.006).
MIN_SIMILARITY_GAIN = 0.02
#: registration runs on copies block-averaged to about this voxel size (speed; the matrix is in
#: world millimetres and applies to the full-resolution series).
COARSE_MM = 2.5


def coarse(volume: Volume, *, target_mm: float = COARSE_MM) -> Volume:
    """``volume`` block-averaged to about ``target_mm`` per axis (axes already coarser untouched).

    >>> v = coarse(Volume(np.ones((10, 10, 3), np.float32), np.diag([1.0, 1.0, 5.0, 1.0])), target_mm=2.5)
    >>> v.array.shape, v.spacing_mm
    ((5, 5, 3), (2.0, 2.0, 5.0))
    """
    factors = [max(1, int(round(target_mm / s))) for s in volume.spacing_mm]
    if factors == [1, 1, 1]:
        return volume
    data = np.asarray(volume.array, dtype=np.float32)
    shape = [n // f for n, f in zip(data.shape, factors, strict=True)]
    data = data[: shape[0] * factors[0], : shape[1] * factors[1], : shape[2] * factors[2]]
    data = data.reshape(shape[0], factors[0], shape[1], factors[1], shape[2], factors[2]).mean(axis=(1, 3, 5))
    scale = np.eye(4)
    for axis, f in enumerate(factors):
        scale[axis, axis] = f
        scale[axis, 3] = (f - 1) / 2.0
    return Volume(data, np.asarray(volume.affine, dtype=float) @ scale)


@dataclass(frozen=True, slots=True)
class SequenceAlignment:
    """What was decided for one sequence."""

    sequence: Sequence
    applied: bool
    motion_mm: float
    rotation_deg: float
    translation_mm: float
    similarity_before: float
    similarity_after: float
    reason: str

    @property
    def flag(self) -> str | None:
        return f"realigned:{self.sequence}" if self.applied else None


#: QC limits for sequences of one examination: little motion is plausible, and two contrasts
#: share less information than two scans of one contrast (the gain over the DICOM geometry is
#: required besides).
QC = {"max_rotation_deg": 10.0, "max_translation_mm": 20.0, "min_similarity": 0.05}


def _registrar():  # noqa: ANN202
    from engine.registration.qc import QcThresholds
    from engine.registration.sitk_registrar import SimpleItkRegistrar, SitkConfig

    # on COARSE_MM copies: two levels (5 mm, 2.5 mm); sequences of one examination are close
    return SimpleItkRegistrar(config=SitkConfig(shrink_factors=(2, 1), smoothing_mm=(2.0, 1.0),
                                                rigid_iterations=100), initial="identity",
                              thresholds=QcThresholds(**QC))


def align_one(reference: Volume, moving: Volume, sequence: Sequence, *, min_motion_mm: float = MIN_MOTION_MM,
              min_gain: float = MIN_SIMILARITY_GAIN, coarse_reference: Volume | None = None,
              ) -> tuple[Volume, SequenceAlignment]:
    """``moving`` with its geometry corrected onto ``reference`` when needed (see module doc).

    ``coarse_reference``: ``coarse(reference)`` when the caller already has it (one per study).
    """
    from engine.errors import RegistrationError
    from engine.registration.qc import similarity_after

    fixed = coarse_reference if coarse_reference is not None else coarse(reference)
    small = coarse(moving)
    before, _ = similarity_after(fixed=fixed, moving=small, matrix=np.eye(4),
                                 fixed_keep=np.ones(fixed.array.shape, dtype=bool),
                                 moving_keep=np.ones(small.array.shape, dtype=bool))
    try:
        result = _registrar().register(fixed=fixed, moving=small)
    except (RegistrationError, ValueError) as exc:
        reason = f"kept the DICOM geometry: registration failed ({exc})"
        return moving, SequenceAlignment(sequence, False, 0.0, 0.0, 0.0, before, before, reason)
    motion = result.translation_mm + HEAD_RADIUS_MM * math.radians(result.rotation_deg)
    min_motion_mm = max(min_motion_mm, 0.5 * max(*fixed.spacing_mm, *small.spacing_mm))
    figures = (f"motion {motion:.1f} mm (rotation {result.rotation_deg:.1f} deg, translation "
               f"{result.translation_mm:.1f} mm), similarity {before:.3f} -> {result.similarity:.3f}")
    if not result.passed:
        applied, why = False, f"kept the DICOM geometry: {result.qc_reason}"
    elif motion < min_motion_mm:
        applied, why = False, f"kept the DICOM geometry: {figures} (under {min_motion_mm:g} mm)"
    elif result.similarity < before + min_gain:
        applied, why = False, f"kept the DICOM geometry: {figures} (no gain of {min_gain:g})"
    else:
        applied, why = True, f"realigned onto the reference: {figures}"
    decision = SequenceAlignment(sequence, applied, motion, result.rotation_deg, result.translation_mm, before,
                                 result.similarity, why)
    if not applied:
        return moving, decision
    corrected = Volume(moving.array, np.asarray(result.matrix) @ np.asarray(moving.affine, dtype=float),
                       dict(moving.metadata))
    return corrected, decision


def align_sequences(
    volumes: Mapping[Sequence, Volume], *, reference: Sequence, min_motion_mm: float = MIN_MOTION_MM,
    min_gain: float = MIN_SIMILARITY_GAIN, workers: int | None = None,
) -> tuple[dict[Sequence, Volume], tuple[SequenceAlignment, ...]]:
    """Every sequence but ``reference`` through :func:`align_one`; the volumes and the decisions.

    The sequences are registered concurrently in ``workers`` threads (default: one per sequence;
    SimpleITK releases the GIL): on the 2-core CPU the stage's median over the 30 held-out studies
    of ``benchmarks.bench_segmentation`` went from 1.38 to 1.07 s (2026-12-04, same machine).
    Each registration is computed as it is alone; ITK's threaded sums vary in the last digits
    from run to run either way (measured: motion differs at 1e-11 mm between serial runs).
    """
    out = dict(volumes)
    fixed = coarse(volumes[reference])
    others = [sequence for sequence in volumes if sequence is not reference]

    def one(sequence: Sequence) -> tuple[Volume, SequenceAlignment]:
        return align_one(volumes[reference], volumes[sequence], sequence, min_motion_mm=min_motion_mm,
                         min_gain=min_gain, coarse_reference=fixed)

    results = in_threads(one, others, len(others) if workers is None else int(workers), name="align")
    decisions = []
    for sequence, (volume, decision) in zip(others, results, strict=True):
        out[sequence] = volume
        decisions.append(decision)
        # geometry figures only: nothing here identifies the patient or the study
        log.log(logging.INFO if decision.applied else logging.DEBUG, "%s: %s", sequence, decision.reason)
    return out, tuple(decisions)


__all__ = ["SequenceAlignment", "align_one", "align_sequences"]
