"""Quality control of a registration: similarity after alignment, transform size, verdict.

Every registrar runs the same check so verdicts are comparable across methods. A failed check
is never used silently: the result says ``passed=False`` with the reason, and
:func:`require_passed` turns it into a :class:`RegistrationError` for the pipeline to quarantine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from engine.errors import RegistrationError
from engine.registration.geometry import (
    displacement_at_mm,
    rotation_angle_deg,
    scale_deviation,
    volume_center_mm,
    voxel_map,
)
from engine.registration.protocol import RegistrationResult, Stage
from engine.types import Volume

QC_BINS = 32


@dataclass(frozen=True, slots=True)
class QcThresholds:
    """Limits beyond which a registration fails QC (patients do not turn their head 20 deg)."""

    max_rotation_deg: float = 20.0
    max_translation_mm: float = 40.0
    max_scale_deviation: float = 0.10
    min_similarity: float = 0.15
    min_overlap: float = 0.80


def entropy_correlation(a: np.ndarray, b: np.ndarray, *, bins: int = QC_BINS) -> float:
    """Entropy correlation coefficient ``2 MI / (H(a) + H(b))`` in [0, 1] of paired samples.

    1 means one intensity predicts the other exactly (any monotone or multi-modal relation),
    0 means independent.

    >>> x = np.linspace(0, 1, 1000)
    >>> round(entropy_correlation(x, 1 - x), 3)
    1.0
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.size != b.size or a.size < bins:
        msg = f"Arguments 'a' and 'b' must be paired samples of >= {bins} values, got {a.size} and {b.size}"
        raise ValueError(msg)
    joint, _, _ = np.histogram2d(a, b, bins=bins, range=[_robust_range(a), _robust_range(b)])
    p = joint / joint.sum()
    pa = p.sum(axis=1)
    pb = p.sum(axis=0)
    h_a = -np.sum(pa[pa > 0] * np.log(pa[pa > 0]))
    h_b = -np.sum(pb[pb > 0] * np.log(pb[pb > 0]))
    h_ab = -np.sum(p[p > 0] * np.log(p[p > 0]))
    if h_a + h_b <= 0:
        return 0.0
    return float(np.clip(2.0 * (h_a + h_b - h_ab) / (h_a + h_b), 0.0, 1.0))


def _robust_range(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(x, [0.5, 99.5])
    return (float(lo), float(hi if hi > lo else lo + 1.0))


def similarity_after(
    *,
    fixed: Volume,
    moving: Volume,
    matrix: np.ndarray,
    fixed_keep: np.ndarray,
    moving_keep: np.ndarray,
    max_points: int = 200_000,
    seed: int = 0,
) -> tuple[float, float]:
    """(similarity, overlap) of the aligned pair over the fixed scan's foreground.

    Foreground: fixed voxels brighter than 10 % of its 99th percentile, outside the excluded
    lesion. ``overlap`` is the fraction of those that land inside the moving field of view (and
    outside the moving lesion); ``similarity`` is :func:`entropy_correlation` over them.
    """
    data = np.asarray(fixed.array, dtype=np.float32)
    threshold = 0.1 * float(np.percentile(data, 99))
    candidates = np.flatnonzero((data > threshold) & fixed_keep)
    if candidates.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    if candidates.size > max_points:
        candidates = np.sort(rng.choice(candidates, size=max_points, replace=False))
    index = np.stack(np.unravel_index(candidates, data.shape)).astype(float)
    vox = voxel_map(reference_affine=fixed.affine, moving_affine=moving.affine, matrix=matrix)
    coords = vox[:3, :3] @ index + vox[:3, 3:4]
    shape = np.asarray(moving.array.shape)[:, None]
    inside = np.all((coords >= -0.5) & (coords <= shape - 0.5), axis=0)
    nearest = np.clip(np.rint(coords).astype(int), 0, shape - 1)
    inside &= moving_keep[tuple(nearest)]
    overlap = float(inside.mean())
    if inside.sum() < QC_BINS * 4:
        return 0.0, overlap
    values = ndimage.map_coordinates(
        np.asarray(moving.array, dtype=np.float32), coords[:, inside], order=1, mode="nearest"
    )
    return entropy_correlation(data.ravel()[candidates[inside]], values), overlap


def judge(
    *,
    rotation_deg: float,
    translation_mm: float,
    scale_dev: float,
    similarity: float,
    overlap: float,
    thresholds: QcThresholds,
) -> tuple[bool, str]:
    """QC verdict and one sentence quoting the numbers."""
    problems = []
    if not rotation_deg <= thresholds.max_rotation_deg:
        problems.append(f"rotation {rotation_deg:.1f} deg exceeds {thresholds.max_rotation_deg:g} deg")
    if not translation_mm <= thresholds.max_translation_mm:
        problems.append(f"translation {translation_mm:.1f} mm exceeds {thresholds.max_translation_mm:g} mm")
    if not scale_dev <= thresholds.max_scale_deviation:
        problems.append(
            f"scaling {100 * scale_dev:.1f} % exceeds {100 * thresholds.max_scale_deviation:g} %"
        )
    if not overlap >= thresholds.min_overlap:
        problems.append(f"overlap {100 * overlap:.0f} % is below {100 * thresholds.min_overlap:g} %")
    if not similarity >= thresholds.min_similarity:
        problems.append(f"similarity {similarity:.3f} is below {thresholds.min_similarity:g}")
    figures = (
        f"rotation {rotation_deg:.1f} deg, translation {translation_mm:.1f} mm, "
        f"similarity {similarity:.3f}, overlap {100 * overlap:.0f} %"
    )
    if problems:
        return False, f"QC failed: {'; '.join(problems)} ({figures})."
    return True, f"QC passed: {figures}."


def evaluate(
    *,
    fixed: Volume,
    moving: Volume,
    matrix: np.ndarray,
    fixed_keep: np.ndarray,
    moving_keep: np.ndarray,
    thresholds: QcThresholds,
    stage: Stage,
    metric_name: str,
    final_metric: float,
    method: str,
    elapsed_s: float,
) -> RegistrationResult:
    """Run the QC on an estimated ``matrix`` (moving -> fixed, RAS mm) and build the result."""
    matrix = np.asarray(matrix, dtype=float)
    similarity, overlap = similarity_after(
        fixed=fixed, moving=moving, matrix=matrix, fixed_keep=fixed_keep, moving_keep=moving_keep
    )
    rotation = rotation_angle_deg(matrix)
    center = volume_center_mm(fixed.affine, fixed.array.shape)
    translation = displacement_at_mm(np.linalg.inv(matrix), center)
    scale_dev = scale_deviation(matrix)
    passed, reason = judge(
        rotation_deg=rotation,
        translation_mm=translation,
        scale_dev=scale_dev,
        similarity=similarity,
        overlap=overlap,
        thresholds=thresholds,
    )
    return RegistrationResult(
        matrix=matrix,
        stage=stage,
        metric_name=metric_name,
        final_metric=float(final_metric),
        similarity=similarity,
        overlap=overlap,
        rotation_deg=rotation,
        translation_mm=translation,
        scale_deviation=scale_dev,
        passed=passed,
        qc_reason=reason,
        method=method,
        elapsed_s=float(elapsed_s),
    )


def require_passed(result: RegistrationResult, *, exam: str | None = None) -> RegistrationResult:
    """Return ``result`` if it passed QC, else raise :class:`RegistrationError` (quarantine)."""
    if result.passed:
        return result
    raise RegistrationError(
        f"Registration to the reference scan failed its quality check: {result.qc_reason}",
        exam=exam,
        action=(
            "The study was quarantined and its measurements not used. Check that both series "
            "show the same patient and sequence, and review the alignment before re-running."
        ),
        detail=json.dumps(result.to_dict()),
    )
