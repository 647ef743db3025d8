"""Run a segmenter over an evaluation dataset and write the report.

Each case goes through exactly what the pipeline runs on a study: ``Segmenter.segment`` on the
case's volumes (the model's own preprocessing, sequence alignment, inference, decision rule and
sanity checks), labels on the T1c's grid. The reference is brought onto that grid (nearest
neighbour in world space when it is on another one) and scored (:mod:`engine.modelling.evaluation.scoring`).

Report folder::

    cases.csv        one row per case: status, reason, flags, timing, volumes, scores per region
    summary.json     the model, the dataset, per-region means and medians, volume agreement, cavity check
    summary.png      box plots of Dice, Bland-Altman per label
    sheets/<case>.png  T1c and FLAIR with the labels, three axial slices through the tumour
    labels/<case>.nii.gz  the model's labels (GlioWatch numbering, T1c grid)

A case that cannot be read or segmented is reported with the reason and the others still run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import GlioWatchError
from engine.modelling.evaluation.agreement import volume_agreement
from engine.modelling.evaluation.dataset import EvaluationCase, EvaluationInputError, reference_labels
from engine.modelling.evaluation.scoring import REGIONS, RegionScore, score_labels
from engine.segmentation.result import Segmenter
from engine.segmentation.sanity import label_volumes_ml
from engine.types import Label, Sequence, Volume

#: a predicted resection cavity above this volume on a scan whose reference has none is reported.
CAVITY_LIMIT_ML = 0.5
LABEL_NAMES = tuple(label.name for label in Label)


@dataclass(slots=True)
class CaseOutcome:
    """One row of ``cases.csv``."""

    case: str
    status: str  # scored | unlabelled | error
    reason: str = ""
    convention: str = ""
    sequences: str = ""
    flags: str = ""
    seconds: float = math.nan
    predicted_ml: dict[str, float] = field(default_factory=dict)
    reference_ml: dict[str, float] = field(default_factory=dict)
    scores: dict[str, RegionScore] = field(default_factory=dict)
    #: the result's provenance (model name, version, hashes, device).
    model: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "case": self.case, "status": self.status, "reason": self.reason, "labels": self.convention,
            "sequences": self.sequences, "flags": self.flags, "seconds": round(self.seconds, 2),
            "model": f"{self.model.get('model_name', '')} {self.model.get('model_version', '')}".strip(),
        }
        for name in LABEL_NAMES:
            row[f"pred_{name}_ml"] = self.predicted_ml.get(name, math.nan)
            row[f"ref_{name}_ml"] = self.reference_ml.get(name, math.nan)
        for region in REGIONS:
            score = self.scores.get(region)
            for key in ("dice", "hd95_mm", "lesion_dice", "lesion_hd95_mm", "lesions_tp", "lesions_fp", "lesions_fn"):
                row[f"{region}_{key}"] = getattr(score, key) if score is not None else math.nan
        return row


def read_volumes(case: EvaluationCase) -> dict[Sequence, Volume]:
    from engine.dicom.nifti import read_nifti

    return {seq: read_nifti(path) for seq, path in case.sequences.items()}


def reference_on_grid(reference: Volume, grid: Volume) -> np.ndarray:
    """The reference labels on ``grid`` (as they are when the grids match, else nearest
    neighbour in world space; outside the reference's field of view is background)."""
    if reference.array.shape == grid.array.shape and np.allclose(reference.affine, grid.affine, atol=1e-3):
        return np.asarray(reference.array)
    from engine.segmentation.preprocess import resample_to_grid

    moved = resample_to_grid(Volume(np.asarray(reference.array, np.float32), reference.affine),
                             affine=grid.affine, shape=grid.array.shape, mode="nearest")
    return np.rint(moved.numpy()).astype(np.uint8)


def evaluate_case(
    case: EvaluationCase, *, segmenter: Segmenter, convention: str, out_dir: Path,
) -> CaseOutcome:
    """Segment, score and draw one case; a failure becomes an ``error`` outcome with the reason."""
    from engine.dicom.nifti import read_nifti, write_nifti
    from engine.modelling.evaluation.figures import contact_sheet

    outcome = CaseOutcome(case=case.name, status="error",
                          sequences=",".join(str(s) for s in case.sequences))
    if case.problem:
        outcome.reason = f"case {case.name}: {case.problem}"
        return outcome
    try:
        volumes = read_volumes(case)
        start = time.perf_counter()
        result = segmenter.segment(volumes, exam=case.name)
        outcome.seconds = time.perf_counter() - start
        predicted = result.labels
        pred = np.asarray(predicted.array, dtype=np.uint8)
        voxel_ml = predicted.voxel_ml
        outcome.flags = ";".join(result.flags)
        outcome.model = {k: v for k, v in result.provenance().items() if k != "elapsed_s"}
        outcome.predicted_ml = dict(result.volumes_ml)  # measured by the segmenter on these labels
        write_nifti(predicted, out_dir / "labels" / f"{case.name}.nii.gz", force=True)
        ref: np.ndarray | None = None
        if case.reference is not None:
            ref_volume = read_nifti(case.reference)
            ref_raw, outcome.convention = reference_labels(ref_volume, convention=convention, case=case.name)
            ref = reference_on_grid(Volume(ref_raw, ref_volume.affine), predicted)
            outcome.reference_ml = label_volumes_ml(ref, voxel_ml=voxel_ml)
            spacing = tuple(float(s) for s in np.linalg.norm(predicted.affine[:3, :3], axis=0))
            regions = tuple(r for r in REGIONS if r != "RC" or outcome.convention == "brats2024")
            outcome.scores = score_labels(pred, ref, spacing_mm=spacing, regions=regions)  # type: ignore[arg-type]
            outcome.status = "scored"
        else:
            outcome.status = "unlabelled"
        caption = ", ".join(f"{k} {v:.1f} mL" for k, v in outcome.predicted_ml.items())
        if outcome.scores:
            caption += " | Dice " + " ".join(f"{r} {outcome.scores[r].dice:.2f}" for r in ("WT", "TC", "ET"))
        contact_sheet(out_dir / "sheets" / f"{case.name}.png", case=case.name, t1c=volumes.get(Sequence.T1C),
                      flair=volumes.get(Sequence.FLAIR), predicted=predicted, reference=ref, caption=caption)
    except (GlioWatchError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, GlioWatchError) else f"{type(exc).__name__}: {exc}"
        outcome.status, outcome.reason = "error", f"case {case.name}: {reason}"
    return outcome


def _stats(values: list[float]) -> dict[str, float | int]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return {"n": 0, "mean": math.nan, "median": math.nan, "min": math.nan, "max": math.nan}
    return {"n": len(finite), "mean": float(np.mean(finite)), "median": float(np.median(finite)),
            "min": float(np.min(finite)), "max": float(np.max(finite))}


def summarise(outcomes: list[CaseOutcome], *, dataset: str) -> dict[str, Any]:
    """``summary.json``'s content: the model (as its results record it), per region statistics over
    the scored cases, volume agreement per label and for the whole tumour, the cavity check, timing."""
    models: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        if o.model:
            entry = models.setdefault(f"{o.model['model_name']} {o.model['model_version']}", {**o.model, "cases": 0})
            entry["cases"] += 1
    scored = [o for o in outcomes if o.status == "scored"]
    regions: dict[str, Any] = {}
    for region in REGIONS:
        scores = [o.scores[region] for o in scored if region in o.scores]
        regions[region] = {key: _stats([getattr(s, key) for s in scores])
                           for key in ("dice", "hd95_mm", "lesion_dice", "lesion_hd95_mm")}
    agreement = {}
    for name in (*LABEL_NAMES, "WT"):
        def total(volumes: dict[str, float], name: str = name) -> float:
            parts = ("NETC", "SNFH", "ET") if name == "WT" else (name,)
            return sum(volumes.get(p, 0.0) for p in parts)
        pairs = [(total(o.predicted_ml), total(o.reference_ml)) for o in scored
                 if name != "RC" or o.convention == "brats2024"]
        agreement[name] = volume_agreement([p for p, _ in pairs], [r for _, r in pairs]).as_dict()
    invented = [o.case for o in outcomes if o.predicted_ml.get("RC", 0.0) > CAVITY_LIMIT_ML
                and o.reference_ml.get("RC", 0.0) == 0.0 and o.status == "scored"]
    ran = [o for o in outcomes if o.status != "error"]
    return {
        "dataset": dataset,
        "models": list(models.values()),
        "cases": {"total": len(outcomes), "scored": len(scored),
                  "unlabelled": sum(o.status == "unlabelled" for o in outcomes),
                  "errors": [{"case": o.case, "reason": o.reason} for o in outcomes if o.status == "error"]},
        "regions": regions,
        "volume_agreement_ml": agreement,
        "cavity_check": {"limit_ml": CAVITY_LIMIT_ML, "cases_with_reference_without_cavity": sum(
            1 for o in scored if o.reference_ml.get("RC", 0.0) == 0.0), "cases_over_limit": invented},
        "seconds_per_case": _stats([o.seconds for o in ran]),
        "definitions": "scoring: engine/modelling/evaluation/scoring.py (panoptica with brats-evaluation's glioma config; "
                       "lesion-wise = sum of matched Dice / (TP + FN + FP)); RC statistics only over references "
                       "that can label a cavity (BraTS 2024 convention)",
    }


def evaluate_dataset(
    cases: list[EvaluationCase], *, segmenter: Segmenter, convention: str, out_dir: Path,
    dataset: str, progress: Callable[[str], None] | None = None,
) -> tuple[list[CaseOutcome], dict[str, Any]]:
    """Every case through :func:`evaluate_case`, then ``cases.csv``, ``summary.json`` and
    ``summary.png`` under ``out_dir``."""
    import pandas as pd

    from engine.modelling.evaluation.figures import summary_figure

    for sub in ("labels", "sheets"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    outcomes = []
    for case in cases:
        outcomes.append(evaluate_case(case, segmenter=segmenter, convention=convention, out_dir=out_dir))
        if progress is not None:
            progress(case.name)
    pd.DataFrame([o.row() for o in outcomes]).to_csv(out_dir / "cases.csv", index=False)
    summary = summarise(outcomes, dataset=dataset)
    names = ", ".join(f"{m['model_name']} {m['model_version']}" for m in summary["models"]) or "no model"
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n")
    scored = [o for o in outcomes if o.status == "scored"]
    summary_figure(
        out_dir / "summary.png",
        dice={r: [o.scores[r].dice for o in scored if r in o.scores] for r in REGIONS},
        lesion_dice={r: [o.scores[r].lesion_dice for o in scored if r in o.scores] for r in REGIONS},
        volumes={n: ([o.predicted_ml[n] for o in scored], [o.reference_ml[n] for o in scored])
                 for n in ("ET", "SNFH", "NETC")},
        title=f"{names} on {dataset}: {len(scored)} scored case(s)",
    )
    return outcomes, summary


__all__ = ["CaseOutcome", "EvaluationInputError", "evaluate_case", "evaluate_dataset", "summarise"]
