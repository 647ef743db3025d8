"""Scores of one predicted label volume against a reference, per region, voxel- and lesion-wise.

The metrics come from the field's own packages, not from hand-written lesion matching:
``panoptica`` (BrainLesion) with the glioma configuration that ``brats-evaluation`` (the BraTS
challenges' official metrics package) ships: regions WT (1+2+3), TC (1+3), ET (3), SNFH (2),
NETC (1), RC (4) in BraTS 2024 numbering, lesions as connected components, matched one to one by
maximum bipartite matching on Dice.

Per region:

* **voxel-wise** Dice and HD95 of the whole region (panoptica's ``global_bin_dsc`` /
  ``global_bin_hd95``, HD95 in mm with the volume's spacing);
* **lesion-wise** Dice and HD95 as BraTS 2023-2024 define them: every reference lesion and every
  unmatched predicted lesion counts, a missed or false lesion with Dice 0 and HD95
  :data:`HD95_PENALTY_MM`, i.e. ``sum(Dice of matched) / (TP + FN + FP)``;
* both empty: Dice 1 and HD95 0 (the BraTS convention); one empty: Dice 0, HD95 the penalty.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from engine.types import Label

#: HD95 given to a missed or invented region or lesion: the diagonal of the BraTS (SRI24) box, mm.
HD95_PENALTY_MM = 374.0
#: region -> GlioWatch labels (BraTS 2024 numbering), as brats-evaluation's glioma config groups them.
REGIONS: dict[str, tuple[Label, ...]] = {
    "WT": (Label.NETC, Label.SNFH, Label.ET),
    "TC": (Label.NETC, Label.ET),
    "ET": (Label.ET,),
    "SNFH": (Label.SNFH,),
    "NETC": (Label.NETC,),
    "RC": (Label.RC,),
}


@dataclass(frozen=True, slots=True)
class RegionScore:
    """One region of one case."""

    dice: float
    hd95_mm: float
    lesion_dice: float
    lesion_hd95_mm: float
    lesions_tp: int
    lesions_fp: int
    lesions_fn: int
    reference_ml: float
    predicted_ml: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=1)
def _evaluator() -> Any:
    """panoptica's evaluator built from brats-evaluation's glioma config (built once; its
    import prints a citation banner, kept out of the command's output)."""
    from importlib.resources import files

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from panoptica import Panoptica_Evaluator

        config = files("brats_evaluation").joinpath("configs", "config_gli.yaml")
        return Panoptica_Evaluator.load_from_config(str(config))


def _finite(value: Any, *, penalty: float) -> float:
    value = float(value) if value is not None else math.nan
    return penalty if math.isinf(value) else value


def lesion_wise(sum_dice: float, sum_hd95: float, *, tp: int, fp: int, fn: int) -> tuple[float, float]:
    """BraTS lesion-wise (Dice, HD95) from the matched lesions' sums and the counts.

    >>> lesion_wise(1.6, 4.0, tp=2, fp=1, fn=1)
    (0.4, 188.0)
    >>> lesion_wise(0.0, 0.0, tp=0, fp=0, fn=0)
    (1.0, 0.0)
    """
    n = tp + fp + fn
    if n == 0:
        return 1.0, 0.0
    return sum_dice / n, (sum_hd95 + HD95_PENALTY_MM * (fp + fn)) / n


def score_labels(
    predicted: np.ndarray, reference: np.ndarray, *, spacing_mm: tuple[float, float, float],
    regions: tuple[str, ...] = tuple(REGIONS),
) -> dict[str, RegionScore]:
    """Scores per region of two GlioWatch label volumes on one grid (see the module doc)."""
    if predicted.shape != reference.shape:
        msg = f"Argument 'reference' must have the shape of 'predicted' {predicted.shape}, got {reference.shape}"
        raise ValueError(msg)
    voxel_ml = float(np.prod(spacing_mm)) / 1000.0
    pred = np.ascontiguousarray(predicted, dtype=np.uint8)
    ref = np.ascontiguousarray(reference, dtype=np.uint8)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # panoptica's note on its NSD threshold (NSD is not reported)
        results = _evaluator().evaluate(pred, ref, voxelspacing=tuple(float(s) for s in spacing_mm), verbose=False)
    out: dict[str, RegionScore] = {}
    for region in regions:
        values = [int(v) for v in REGIONS[region]]
        ref_voxels = int(np.isin(ref, values).sum())
        pred_voxels = int(np.isin(pred, values).sum())
        if ref_voxels == 0 and pred_voxels == 0:
            out[region] = RegionScore(1.0, 0.0, 1.0, 0.0, 0, 0, 0, 0.0, 0.0)
            continue
        result = results[region.lower()].to_dict(True)
        tp, fp, fn = int(result["tp"]), int(result["fp"]), int(result["fn"])
        sq_dice = float(result.get("sq_dsc") or 0.0) if tp else 0.0
        sq_hd95 = _finite(result.get("sq_hd95"), penalty=HD95_PENALTY_MM) if tp else 0.0
        lesion_dice, lesion_hd95 = lesion_wise(sq_dice * tp, sq_hd95 * tp, tp=tp, fp=fp, fn=fn)
        out[region] = RegionScore(
            dice=_finite(result["global_bin_dsc"], penalty=0.0) if ref_voxels and pred_voxels else 0.0,
            hd95_mm=_finite(result["global_bin_hd95"], penalty=HD95_PENALTY_MM) if ref_voxels and pred_voxels
            else HD95_PENALTY_MM,
            lesion_dice=lesion_dice,
            lesion_hd95_mm=lesion_hd95,
            lesions_tp=tp,
            lesions_fp=fp,
            lesions_fn=fn,
            reference_ml=ref_voxels * voxel_ml,
            predicted_ml=pred_voxels * voxel_ml,
        )
    return out
