"""Calibration of the decision rule's per-label weights on a calibration cohort (model development).

The rule itself (:func:`engine.segmentation.decision.decide`) is runtime; choosing its weights
(``gliowatch calibrate``) searches :data:`DEFAULT_GRID` for the weights that maximise
:func:`objective` over the cohort's studies.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from engine.modelling.evaluation.metrics import REGIONS, relative_volume_error
from engine.segmentation.decision import CERTAIN_BACKGROUND, TUNED_LABELS, channel_weights, decide, label_lut
from engine.types import Label

#: default search grid per tuned label.
DEFAULT_GRID: tuple[float, ...] = (0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)


@dataclass(frozen=True, slots=True, eq=False)
class CalibrationCase:
    """One study of the calibration cohort: probabilities and truth on the reference-grid box."""

    study: str
    #: (K, X, Y, Z) float16 class probabilities on the box of the reference grid (or (K, M) of
    #: M voxels, :func:`compact_case`).
    probabilities: np.ndarray
    #: (X, Y, Z) truth labels on the same voxels.
    truth: np.ndarray
    #: truth voxels of each region (REGIONS) outside those voxels (always predicted background).
    truth_outside: Mapping[str, int]
    voxel_ml: float
    #: the generator's true volume per label name (mL).
    true_ml: Mapping[str, float]
    tags: Mapping[str, str] = field(default_factory=dict)


def compact_case(case: CalibrationCase, *, certain_background: float = CERTAIN_BACKGROUND) -> CalibrationCase:
    """The same case keeping only the voxels whose label an allowed weight (< MAX_WEIGHT, 19) can change.

    Where ``max(p_0, 1 - sum p) >= certain_background`` (0.95) every weighted tumour score
    stays below background (``w p_k < 19 * 0.05``), so those voxels are background whatever the
    weights; their truth moves into ``truth_outside`` (missed), and the search runs on the rest.
    """
    flat = case.probabilities.reshape(case.probabilities.shape[0], -1)
    truth = case.truth.reshape(-1)
    background = np.maximum(flat[0].astype(np.float32), 1.0 - flat.astype(np.float32).sum(0))
    keep = background < certain_background
    outside = dict(case.truth_outside)
    for region, members in REGIONS.items():
        dropped = np.isin(truth[~keep], [int(v) for v in members])
        outside[region] = int(outside.get(region, 0)) + int(dropped.sum())
    return CalibrationCase(study=case.study, probabilities=np.ascontiguousarray(flat[:, keep]),
                           truth=truth[keep].copy(), truth_outside=outside, voxel_ml=case.voxel_ml,
                           true_ml=case.true_ml, tags=case.tags)


def case_metrics(case: CalibrationCase, *, weights: np.ndarray, lut: np.ndarray,
                 min_true_ml: float = 0.5) -> dict[str, float | None]:
    """Dice per region (None where the truth region is empty) and |volume error| of ET and SNFH."""
    labels = decide(case.probabilities, weights=weights, lut=lut)
    out: dict[str, float | None] = {}
    for region, members in REGIONS.items():
        ids = [int(v) for v in members]
        pred, true = np.isin(labels, ids), np.isin(case.truth, ids)
        true_n = int(true.sum()) + int(case.truth_outside.get(region, 0))
        total = int(pred.sum()) + true_n
        out[f"dice_{region}"] = None if true_n == 0 else 2.0 * int((pred & true).sum()) / total
    measured = (Label.ET, Label.SNFH)
    errors = relative_volume_error(
        {label.name: float((labels == int(label)).sum()) * case.voxel_ml for label in measured},
        {label.name: float(case.true_ml.get(label.name, 0.0)) for label in measured},
        min_true_ml=min_true_ml,
    )
    out.update({f"volerr_{label.name}": errors.get(label.name) for label in measured})
    return out


def summarise(per_case: Iterable[Mapping[str, float | None]]) -> dict[str, float | None]:
    """Mean Dice per region and median |volume error| over the cases where they are defined."""
    rows = list(per_case)
    out: dict[str, float | None] = {}
    for key in ("dice_WT", "dice_TC", "dice_ET", "dice_RC"):
        vals = [r[key] for r in rows if r.get(key) is not None]
        out[key] = statistics.mean(vals) if vals else None  # type: ignore[arg-type]
    for key in ("volerr_ET", "volerr_SNFH"):
        vals = [r[key] for r in rows if r.get(key) is not None]
        out[key] = statistics.median(vals) if vals else None  # type: ignore[arg-type]
    return out


def objective(summary: Mapping[str, float | None]) -> float:
    """What calibration maximises: Dice WT + TC + ET minus the median volume errors of ET and SNFH."""
    value = 0.0
    for key in ("dice_WT", "dice_TC", "dice_ET"):
        value += float(summary.get(key) or 0.0)
    for key in ("volerr_ET", "volerr_SNFH"):
        value -= float(summary.get(key) or 0.0)
    return value


@dataclass(frozen=True, slots=True)
class Calibration:
    weights: dict[Label, float]
    summary: dict[str, float | None]
    baseline: dict[str, float | None]
    evaluated: int


def evaluate_weights(cases: list[CalibrationCase], weights: Mapping[Label, float],
                     output_labels: Mapping[int, Label]) -> dict[str, float | None]:
    cw = channel_weights(output_labels, weights)
    lut = label_lut(output_labels, len(cw))
    return summarise(case_metrics(c, weights=cw, lut=lut) for c in cases)


def calibrate(cases: list[CalibrationCase], output_labels: Mapping[int, Label], *,
              grid: tuple[float, ...] = DEFAULT_GRID, labels: tuple[Label, ...] = TUNED_LABELS,
              log=None) -> Calibration:
    """Exhaustive search of per-label weights on ``grid`` maximising :func:`objective`.

    Ties keep the combination closest to all-ones (the plain argmax), so weights move only when
    the calibration cohort says they help.
    """
    if not cases:
        msg = "Argument 'cases' must hold at least one calibration study"
        raise ValueError(msg)
    baseline = evaluate_weights(cases, {}, output_labels)
    best: tuple[float, float, dict[Label, float], dict[str, float | None]] | None = None
    combos = list(itertools.product(grid, repeat=len(labels)))
    for i, combo in enumerate(combos):
        weights = dict(zip(labels, combo, strict=True))
        summary = evaluate_weights(cases, weights, output_labels)
        score = objective(summary)
        distance = sum(abs(np.log(w)) for w in combo)
        key = (score, -distance)
        if best is None or key > (best[0], best[1]):
            best = (score, -distance, weights, summary)
            if log:
                log(f"[{i + 1}/{len(combos)}] {_fmt_weights(weights)}: objective {score:.4f} {_fmt_summary(summary)}")
    assert best is not None
    return Calibration(weights=best[2], summary=best[3], baseline=baseline, evaluated=len(combos))


def _fmt_weights(weights: Mapping[Label, float]) -> str:
    return " ".join(f"{k.name}={v:g}" for k, v in weights.items())


def _fmt_summary(summary: Mapping[str, float | None]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in summary.items() if v is not None)
