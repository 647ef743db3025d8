"""The decision rule from class probabilities to labels, and its calibration.

The network's output is a probability per class on the model's working grid (0.8 mm for 0.3.1,
1.0 mm for 0.3.0, 1.5 mm for 0.2.0), resampled onto the reference grid. Labels are the argmax of
``weight_k * p_k``: weights 1 are the plain argmax. A thin enhancing crescent covers a
minority of every working voxel it touches, so its class fraction rarely wins a plain argmax; a
weight above 1 on ET lets it win where it is the most likely tumour class by a margin the
weights set. The weights are a model property
(``decision_weights`` in config.json, by label name) chosen on a *calibration* cohort (its own
seed, neither training nor the held-out evaluation cohort) by :func:`calibrate`.

Only the box around the possible foreground needs the reference grid: a reference voxel whose
eight working-grid neighbours all decode to background decodes to background too, because the
trilinear weights are convex and ``w_0 p_0 >= w_k p_k`` is linear in the probabilities.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engine.segmentation.metrics import REGIONS, relative_volume_error
from engine.types import Label

if TYPE_CHECKING:
    import torch

#: decision weights of labels a config does not name.
DEFAULT_WEIGHT = 1.0
#: tumour labels whose weights :func:`calibrate` tunes (RC is left at 1: its Dice is already high).
TUNED_LABELS: tuple[Label, ...] = (Label.NETC, Label.SNFH, Label.ET)
#: a voxel whose background probability is at least this is background for every allowed weight.
CERTAIN_BACKGROUND = 0.95
#: decision weights must lie below this: then ``w * p_k < p_0`` wherever p_0 >= CERTAIN_BACKGROUND.
MAX_WEIGHT = round(CERTAIN_BACKGROUND / (1.0 - CERTAIN_BACKGROUND), 9)  # 19
#: default search grid per tuned label.
DEFAULT_GRID: tuple[float, ...] = (0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)


def channel_weights(output_labels: Mapping[int, Label], weights: Mapping[Label, float] | None) -> np.ndarray:
    """Weight per output channel (channel 0 = background = 1).

    >>> channel_weights({1: Label.NETC, 3: Label.ET}, {Label.ET: 2.0}).tolist()
    [1.0, 1.0, 1.0, 2.0]
    """
    out = np.ones(max(output_labels) + 1, dtype=np.float32)
    for channel, label in output_labels.items():
        out[channel] = float((weights or {}).get(label, DEFAULT_WEIGHT))
    return out


def label_lut(output_labels: Mapping[int, Label], n_channels: int) -> np.ndarray:
    lut = np.zeros(n_channels, dtype=np.uint8)
    for channel, label in output_labels.items():
        if channel < n_channels:
            lut[channel] = int(label)
    return lut


def decide(probabilities: np.ndarray, *, weights: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Labels (uint8) from (K, ...) probabilities: argmax of ``weights * p``, channel -> label.

    Where every probability is zero (outside the working grid) background wins, as its
    probability is taken as ``max(p_0, 1 - sum p)``.

    >>> p = np.array([[0.6, 0.0], [0.0, 0.0], [0.4, 0.0]])[:, :, None]
    >>> decide(p, weights=np.ones(3), lut=np.array([0, 1, 3], np.uint8)).ravel().tolist()
    [0, 0]
    >>> decide(p, weights=np.array([1.0, 1.0, 2.0]), lut=np.array([0, 1, 3], np.uint8)).ravel().tolist()
    [3, 0]
    """
    import torch

    k = probabilities.shape[0]
    array = np.asarray(probabilities)
    if array.dtype != np.float32 or not array.flags.writeable or min(array.strides) < 0:
        array = np.array(array, dtype=np.float32)  # a copy (calibration keeps float16; torch needs these)
    values = torch.from_numpy(array)  # torch uses every core
    weights = np.concatenate([np.asarray(weights, np.float32)[:k], np.ones(max(0, k - len(weights)), np.float32)])
    factors = [torch.tensor(w) for w in weights] if np.any(weights != 1.0) else None
    # one channel at a time, the input untouched: no scored copy of all K channels
    best = torch.maximum(values[0], 1.0 - values.sum(0))
    if factors is not None:
        best.mul_(factors[0])
    index = torch.zeros(values.shape[1:], dtype=torch.uint8)
    for channel in range(1, k):
        score = values[channel] * factors[channel] if factors is not None else values[channel]
        index.masked_fill_(score > best, channel)  # strictly greater: the first maximum wins
        torch.maximum(best, score, out=best)
    return lut[index.numpy()]


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
