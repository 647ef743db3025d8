"""Evaluation metrics on label volumes (pure): Dice of the BraTS regions and volume errors."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engine.types import Label

#: BraTS composite regions in GlioWatch labels: whole tumour, tumour core, enhancing tumour.
REGIONS: dict[str, tuple[Label, ...]] = {
    "WT": (Label.NETC, Label.SNFH, Label.ET),
    "TC": (Label.NETC, Label.ET),
    "ET": (Label.ET,),
    "RC": (Label.RC,),
}


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty (the BraTS convention).

    >>> dice(np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 0], bool))
    0.6666666666666666
    >>> dice(np.zeros(3, bool), np.zeros(3, bool))
    1.0
    """
    total = int(prediction.sum()) + int(truth.sum())
    if total == 0:
        return 1.0
    return 2.0 * int((prediction & truth).sum()) / total


def region_mask(labels: np.ndarray, region: str) -> np.ndarray:
    """Boolean mask of a :data:`REGIONS` region in a label volume.

    >>> region_mask(np.array([0, 1, 2, 3, 4]), "TC").tolist()
    [False, True, False, True, False]
    """
    return np.isin(labels, [int(v) for v in REGIONS[region]])


def region_dice(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice per region (WT, TC, ET, RC) of two label volumes on the same grid."""
    if prediction.shape != truth.shape:
        msg = f"Argument 'truth' must have the shape of 'prediction' {prediction.shape}, got {truth.shape}"
        raise ValueError(msg)
    return {name: dice(region_mask(prediction, name), region_mask(truth, name)) for name in REGIONS}


def disagreement(ours: np.ndarray, other: np.ndarray, truth: np.ndarray) -> dict[str, dict[str, int]]:
    """Per region: voxels where two label volumes disagree, and on how many of them ``ours`` matches
    the truth (where two binary masks differ exactly one of them matches it).

    >>> a, b, t = np.array([2, 2, 0, 3]), np.array([2, 0, 2, 0]), np.array([2, 2, 0, 0])
    >>> disagreement(a, b, t)["WT"]
    {'voxels': 3, 'ours_right': 2}
    """
    if not ours.shape == other.shape == truth.shape:
        msg = f"Arguments must share one shape, got {ours.shape}, {other.shape} and {truth.shape}"
        raise ValueError(msg)
    out = {}
    for name in REGIONS:
        a, b, t = (region_mask(x, name) for x in (ours, other, truth))
        differ = a != b
        out[name] = {"voxels": int(differ.sum()), "ours_right": int((differ & (a == t)).sum())}
    return out


def relative_volume_error(predicted_ml: Mapping[str, float], true_ml: Mapping[str, float], *, min_true_ml: float = 0.5) -> dict[str, float]:
    """|predicted - true| / true per label whose true volume is at least ``min_true_ml``.

    >>> relative_volume_error({"ET": 9.0, "SNFH": 1.0}, {"ET": 10.0, "SNFH": 0.1})
    {'ET': 0.1}
    """
    return {
        name: abs(float(predicted_ml.get(name, 0.0)) - float(truth)) / float(truth)
        for name, truth in true_ml.items()
        if float(truth) >= min_true_ml
    }
