"""Volume agreement between a model and a reference over cases (pure): Bland-Altman and ICC."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class VolumeAgreement:
    """Predicted minus reference volume (mL) over ``cases`` cases.

    ``bias_ml`` is the mean difference, the limits of agreement ``bias ± 1.96 SD`` (Bland and
    Altman 1986), ``icc`` the two-way random, absolute-agreement, single-rater ICC(A,1)
    (McGraw and Wong 1996; Shrout and Fleiss ICC(2,1)). Fewer than two cases: NaN.
    """

    cases: int
    bias_ml: float
    sd_ml: float
    lower_loa_ml: float
    upper_loa_ml: float
    icc: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def icc_absolute_agreement(a: Sequence[float], b: Sequence[float]) -> float:
    """ICC(A,1) of two raters over n subjects (two-way random effects, absolute agreement).

    >>> round(icc_absolute_agreement([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]), 6)
    1.0
    >>> round(icc_absolute_agreement([1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0]), 4)
    0.7692
    """
    data = np.column_stack([np.asarray(a, float), np.asarray(b, float)])
    n, k = data.shape
    if n < 2:
        return math.nan
    grand = data.mean()
    ss_rows = k * ((data.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((data.mean(axis=0) - grand) ** 2).sum()
    ss_error = ((data - grand) ** 2).sum() - ss_rows - ss_cols
    ms_rows = ss_rows / (n - 1)
    ms_cols = ss_cols / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    denominator = ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n
    if denominator <= 0:
        return 1.0 if np.allclose(data[:, 0], data[:, 1]) else math.nan
    return float((ms_rows - ms_error) / denominator)


def volume_agreement(predicted_ml: Sequence[float], reference_ml: Sequence[float]) -> VolumeAgreement:
    """Bland-Altman bias, limits of agreement and ICC(A,1) of paired volumes.

    >>> v = volume_agreement([11.0, 21.0, 29.0], [10.0, 20.0, 30.0])
    >>> round(v.bias_ml, 3), round(v.sd_ml, 3), round(v.upper_loa_ml, 3)
    (0.333, 1.155, 2.597)
    """
    pred = np.asarray(predicted_ml, float)
    ref = np.asarray(reference_ml, float)
    if pred.shape != ref.shape:
        msg = f"Argument 'reference_ml' must have the length of 'predicted_ml' ({pred.size}), got {ref.size}"
        raise ValueError(msg)
    n = int(pred.size)
    if n < 2:
        return VolumeAgreement(n, math.nan, math.nan, math.nan, math.nan, math.nan)
    diff = pred - ref
    bias, sd = float(diff.mean()), float(diff.std(ddof=1))
    return VolumeAgreement(n, bias, sd, bias - 1.96 * sd, bias + 1.96 * sd, icc_absolute_agreement(pred, ref))
