"""The ``Registrar`` role and what one registration returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from engine.types import Volume


class Stage(StrEnum):
    """How many degrees of freedom the final transform has."""

    RIGID = "rigid"  # 6: rotation + translation
    AFFINE = "affine"  # 12: rigid first, then a full affine refinement


@dataclass(frozen=True, slots=True, eq=False)
class RegistrationResult:
    """One registration of a moving scan onto a fixed scan.

    ``matrix`` (4x4, RAS+ mm) maps a point of the MOVING scan's world to the same anatomical point
    in the FIXED scan's world: ``x_fixed = matrix @ x_moving``. To bring moving voxels into the
    fixed grid use :func:`engine.registration.resample_to` with this matrix.

    ``rotation_deg`` is the angle of the (nearest) rotation; ``translation_mm`` is how far the
    transform moves the centre of the fixed field of view. ``passed`` is the QC verdict and
    ``qc_reason`` one sentence with the numbers. ``similarity`` is the QC similarity (entropy
    correlation coefficient in [0, 1], the same for every method) and ``final_metric`` the
    optimiser's own final value of ``metric_name``.
    """

    matrix: np.ndarray
    stage: Stage
    metric_name: str
    final_metric: float
    similarity: float
    overlap: float
    rotation_deg: float
    translation_mm: float
    scale_deviation: float
    passed: bool
    qc_reason: str
    method: str
    elapsed_s: float

    def __post_init__(self) -> None:
        matrix = np.asarray(self.matrix, dtype=float)
        if matrix.shape != (4, 4) or not np.allclose(matrix[3], [0, 0, 0, 1]):
            msg = f"Argument 'matrix' must be a 4x4 homogeneous matrix, got {matrix.tolist()}"
            raise ValueError(msg)
        if not np.all(np.isfinite(matrix)):
            msg = "Argument 'matrix' must be finite"
            raise ValueError(msg)
        object.__setattr__(self, "matrix", matrix)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (the CLI output and the store row)."""
        return {
            "matrix": [[float(v) for v in row] for row in self.matrix],
            "matrix_direction": "moving RAS mm -> fixed RAS mm (x_fixed = matrix @ x_moving)",
            "stage": str(self.stage),
            "method": self.method,
            "metric_name": self.metric_name,
            "final_metric": float(self.final_metric),
            "similarity": float(self.similarity),
            "overlap": float(self.overlap),
            "rotation_deg": float(self.rotation_deg),
            "translation_mm": float(self.translation_mm),
            "scale_deviation": float(self.scale_deviation),
            "passed": bool(self.passed),
            "qc_reason": self.qc_reason,
            "elapsed_s": float(self.elapsed_s),
        }


class Registrar(Protocol):
    """Aligns a moving scan to a fixed scan.

    Masks are label volumes on the grid of their image (labels 1-4: tumour and cavity); those
    voxels, dilated a little, are excluded from the similarity so that growth or resection does
    not drag the alignment. Implementations always return a result with the QC filled in; a
    failed QC is ``passed=False`` (use :func:`engine.registration.require_passed` to raise).
    """

    def register(
        self,
        *,
        fixed: Volume,
        moving: Volume,
        fixed_mask: Volume | None = None,
        moving_mask: Volume | None = None,
    ) -> RegistrationResult: ...
