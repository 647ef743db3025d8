"""A registration obtained by composing two stored ones, checked like any other.

When A is registered to B and B to C, ``A -> C`` is ``(B -> C) @ (A -> B)`` (matrices in the
package convention: moving RAS mm -> fixed RAS mm). The pipeline uses it where both halves are
already known and passed their QC: a study's registration "to the previous study" (its baseline
registration followed by the inverse of the previous study's), and a study registered to an old
baseline when the baseline changes (its old registration followed by the old baseline's
registration to the new one). No optimisation runs; the composed matrix goes through the same QC
as a registrar's own (similarity, overlap and transform size on the pair itself), so a composed
registration that does not align the pair fails exactly as a direct one would.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from engine.registration.masks import keep_mask
from engine.registration.protocol import RegistrationResult, Stage
from engine.registration.qc import QcThresholds, evaluate
from engine.types import Volume

#: ``metric_name`` of a composed result: no optimiser ran, so there is no final metric (NaN)
COMPOSED_METRIC = "none (composed)"


def compose(*moving_to_fixed: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """The chain of registrations in the order they apply: ``compose(a_to_b, b_to_c)`` maps A to C.

    >>> shift = np.eye(4); shift[0, 3] = 2.0
    >>> compose(shift, shift, np.linalg.inv(shift))[0, 3]
    2.0
    """
    out = np.eye(4)
    for matrix in moving_to_fixed:
        out = np.asarray(matrix, dtype=float) @ out
    return out


def composed_result(
    *,
    fixed: Volume,
    moving: Volume,
    matrix: np.ndarray,
    method: str,
    fixed_mask: Volume | None = None,
    moving_mask: Volume | None = None,
    thresholds: QcThresholds = QcThresholds(),
    margin_mm: float,
    stage: Stage = Stage.RIGID,
) -> RegistrationResult:
    """The QC of a composed ``matrix`` (moving -> fixed) on the pair, as a registrar's result.

    ``method`` names where the matrix came from; the masks exclude the lesions as in
    registration (``margin_mm`` of the registrar that made the halves)."""
    start = time.perf_counter()
    return evaluate(
        fixed=fixed,
        moving=moving,
        matrix=np.asarray(matrix, dtype=float),
        fixed_keep=keep_mask(image=fixed, labels=fixed_mask, margin_mm=margin_mm),
        moving_keep=keep_mask(image=moving, labels=moving_mask, margin_mm=margin_mm),
        thresholds=thresholds,
        stage=stage,
        metric_name=COMPOSED_METRIC,
        final_metric=float("nan"),
        method=method,
        elapsed_s=time.perf_counter() - start,
    )
