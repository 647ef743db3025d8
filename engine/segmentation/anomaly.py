"""Tumour sub-regions from intensity anomalies of the brain (no learnt weights): ``gliowatch-anomaly``.

What a neuroradiologist looks for, written as statistics of one scan against its own brain:

1. every sequence is brought onto a 1 mm working grid (the same preparation as the network:
   :func:`engine.segmentation.preprocess.prepare_study`, with the sequence realignment), and
   expressed as a robust z-score against the brain (median and inter-quartile range of the brain
   voxels, so the tumour itself hardly moves the scale), lightly smoothed;
2. **whole tumour**: FLAIR hyperintensity (T2 when there is no FLAIR) above ``hyper_z``; the
   connected regions of at least ``min_region_ml`` and ``min_region_fraction`` of the largest
   one are kept (small white-matter spots, vessels and the brain's rim are not tumour);
3. **enhancing tissue**: T1c brighter than ``enhance_percentile`` % of the normal-appearing brain
   (the brain outside the whole tumour grown by ``enhance_margin_mm``), within that margin of the
   whole tumour, in connected pieces of at least ``min_enhancing_ml`` (vessels away from it are
   left), where FLAIR (or T2) is at least ``enhance_hyper_z`` (normal white matter is bright on
   T1c but dark on FLAIR). A percentile of the scan's own brain, not a fixed z: grey and white
   matter make the brain's T1c histogram broad, and an enhancing rim is often only as bright as its
   top tail;
4. **non-enhancing core / necrosis**: what the enhancing tissue encloses (holes of the
   enhancing rim, closed by ``core_closing_mm``), less the enhancing tissue itself;
5. **SNFH**: the rest of the whole tumour. No **resection cavity** is labelled: a cavity needs
   the surgical history, which this path does not see.

The brain is the reference's head mask on skull-stripped input (research data, BraTS space),
where that mask is the brain (:mod:`engine.segmentation.input_kind` tells). On whole-head input
the segmenter needs a ``brain_extractor`` (:mod:`engine.segmentation.brain_extraction`, HD-BET):
the brain is then its mask of the reference (T1c), brought onto the working grid; the images are
not changed (every rule is confined to the brain), and the result is flagged ``brain:extracted``.
Parameters come from ``models/gliowatch-anomaly/config.json``; their hash is the config hash.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from scipy import ndimage

from engine.errors import ConfigError, SegmentationError
from engine.segmentation.model_config import canonical_sha256
from engine.segmentation.brain_extraction import BrainExtractor
from engine.segmentation.preprocess import PreparedStudy, fill_holes, prepare_study
from engine.segmentation.result import SegmentationResult
from engine.segmentation.sanity import SanityLimits
from engine.types import STUDY_SEQUENCES, Label, Sequence, Volume

#: output channels as the network's: background, then the labels in order.
OUTPUT_LABELS: dict[int, Label] = {1: Label.NETC, 2: Label.SNFH, 3: Label.ET, 4: Label.RC}
#: on results whose brain came from brain extraction (whole-head input).
BRAIN_FLAG = "brain:extracted"


@dataclass(frozen=True, slots=True)
class AnomalyParameters:
    """The thresholds (robust z-scores against the scan's own brain) and sizes of the method."""

    name: str = "gliowatch-anomaly"
    version: str = "0.1.0"
    spacing_mm: float = 1.0
    brain_erosion_mm: float = 3.0
    smooth_mm: float = 1.0
    hyper_z: float = 2.0
    min_region_ml: float = 1.0
    min_region_fraction: float = 0.2
    enhance_percentile: float = 95.0
    enhance_margin_mm: float = 5.0
    enhance_hyper_z: float = 1.0
    min_enhancing_ml: float = 0.1
    core_closing_mm: float = 4.0

    def config_sha256(self) -> str:
        return canonical_sha256({k: v for k, v in asdict(self).items() if k not in ("name", "version")})


def is_anomaly_model(model_dir: Path | str) -> bool:
    """Whether a model folder's ``config.json`` declares ``"method": "anomaly"``."""
    try:
        return json.loads((Path(model_dir) / "config.json").read_text()).get("method") == "anomaly"
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def load_anomaly_parameters(model_dir: Path | str) -> AnomalyParameters:
    """``config.json`` of an anomaly model folder (``"method": "anomaly"``) -> parameters."""
    path = Path(model_dir) / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"Model config {path} cannot be read", detail=str(exc)) from exc
    if data.get("method") != "anomaly":
        raise ConfigError(f"Model config {path} is not an anomaly model (\"method\": \"anomaly\" missing)")
    known = {f.name for f in fields(AnomalyParameters)}
    unknown = sorted(set(data.get("parameters", {})) - known)
    if unknown:
        raise ConfigError(f"Model config {path} has unknown parameters {unknown}",
                          action=f"Use only {sorted(known)}.")
    return AnomalyParameters(name=data.get("name", "gliowatch-anomaly"), version=str(data.get("version", "0")),
                             **data.get("parameters", {}))


def robust_z(channel: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """(x - median) / (IQR / 1.349) over the brain voxels; a flat channel gives zeros.

    >>> x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 100.0])
    >>> robust_z(x, np.ones(6, bool)).astype(float).round(2).tolist()
    [-1.35, -0.81, -0.27, 0.27, 0.81, 52.07]
    """
    values = channel[brain]
    if values.size < 2:
        return np.zeros_like(channel, dtype=np.float32)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    scale = (q3 - q1) / 1.349
    if scale <= 0:
        return np.zeros_like(channel, dtype=np.float32)
    return ((channel - median) / scale).astype(np.float32)


def _ball(radius_vox: float) -> np.ndarray:
    r = max(int(np.ceil(radius_vox)), 1)
    grid = np.indices((2 * r + 1,) * 3) - r
    return (grid**2).sum(0) <= radius_vox**2 + 1e-6


def _components(mask: np.ndarray, *, min_voxels: float, min_fraction: float = 0.0) -> np.ndarray:
    """The 26-connected parts of ``mask`` of at least ``min_voxels`` and ``min_fraction`` of the largest."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if count == 0:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = (sizes >= min_voxels) & (sizes >= min_fraction * sizes.max())
    keep[0] = False
    return keep[labels]


def anomaly_labels(
    image: Mapping[Sequence, np.ndarray], brain: np.ndarray, *, p: AnomalyParameters, spacing_mm: float,
) -> np.ndarray:
    """Labels (GlioWatch numbering) from the present channels on one grid (see the module doc)."""
    voxel_ml = spacing_mm**3 / 1000.0
    inner = ndimage.binary_erosion(brain, structure=_ball(p.brain_erosion_mm / spacing_mm)) if brain.any() else brain
    z = {seq: ndimage.gaussian_filter(robust_z(ch, inner), p.smooth_mm / spacing_mm) for seq, ch in image.items()}
    labels = np.zeros(brain.shape, np.uint8)
    bright = Sequence.FLAIR if Sequence.FLAIR in z else Sequence.T2 if Sequence.T2 in z else None
    whole = np.zeros(brain.shape, bool)
    if bright is not None:
        whole = _components((z[bright] > p.hyper_z) & inner, min_voxels=p.min_region_ml / voxel_ml,
                            min_fraction=p.min_region_fraction)
    enhancing = np.zeros(brain.shape, bool)
    if Sequence.T1C in z and whole.any():
        near = ndimage.binary_dilation(whole, structure=_ball(p.enhance_margin_mm / spacing_mm))
        normal = inner & ~near
        if normal.any():
            threshold = float(np.percentile(z[Sequence.T1C][normal], p.enhance_percentile))
            candidate = (z[Sequence.T1C] > threshold) & near & inner
            if bright is not None:
                candidate &= z[bright] > p.enhance_hyper_z
            enhancing = _components(candidate,
                                    min_voxels=p.min_enhancing_ml / voxel_ml)
    core = np.zeros(brain.shape, bool)
    if enhancing.any():
        closed = ndimage.binary_closing(enhancing, structure=_ball(p.core_closing_mm / spacing_mm))
        filled = ndimage.binary_fill_holes(closed)
        for axis in range(3):  # a rim open at its poles is still closed in the slices through it
            filled |= fill_holes(closed, plane_normal=axis)
        core = filled & ~enhancing
    whole = ndimage.binary_fill_holes(whole | enhancing | core)
    labels[whole] = Label.SNFH
    labels[core] = Label.NETC
    labels[enhancing] = Label.ET
    return labels


class AnomalySegmenter:
    """:class:`engine.segmentation.result.Segmenter` for ``gliowatch-anomaly`` (no weights, CPU)."""

    def __init__(self, *, parameters: AnomalyParameters = AnomalyParameters(), align_sequences: bool = True,
                 limits: SanityLimits = SanityLimits(), brain_extractor: BrainExtractor | None = None) -> None:
        self.parameters = parameters
        self.align_sequences = align_sequences
        self.limits = limits
        self.brain_extractor = brain_extractor
        self.config_sha256 = parameters.config_sha256() if brain_extractor is None else canonical_sha256(
            {"parameters": parameters.config_sha256(), "brain_extraction": brain_extractor.identity})

    def segment(self, volumes: Mapping[Sequence, Volume], *, exam: str | None = None) -> SegmentationResult:
        import torch

        from engine.segmentation.inference import finish_result, softmax_decoder

        start = time.perf_counter()
        p = self.parameters
        try:
            prepared = prepare_study(volumes, channels=STUDY_SEQUENCES, spacing_mm=p.spacing_mm, divisible_by=1,
                                     align=self.align_sequences)
        except SegmentationError as exc:
            raise SegmentationError(exc.message, exam=exam, action=exc.action, detail=exc.detail) from exc
        present = {seq: prepared.image[i].numpy() for i, seq in enumerate(STUDY_SEQUENCES)
                   if seq not in prepared.missing}
        brain = prepared.head_mask
        if self.brain_extractor is not None:
            brain = self._extracted_brain(prepared, exam=exam)
        labels = anomaly_labels(present, brain, p=p, spacing_mm=p.spacing_mm)
        onehot = torch.from_numpy(np.stack([labels == k for k in range(len(OUTPUT_LABELS) + 1)]).astype(np.float32))
        result = finish_result(
            onehot, prepared=prepared, decode=softmax_decoder(OUTPUT_LABELS), limits=self.limits,
            identity=(p.name, p.version, "", self.config_sha256, "cpu"), start=start,
        )
        if self.brain_extractor is None:
            return result
        return dataclasses.replace(result, flags=(BRAIN_FLAG, *result.flags))

    def _extracted_brain(self, prepared: PreparedStudy, *, exam: str | None) -> np.ndarray:
        """The extractor's brain of the reference (as read), on the cropped working grid (nearest)."""
        from engine.registration.resample import resample_to

        assert self.brain_extractor is not None
        mask = self.brain_extractor.mask(prepared.reference, exam=exam)
        grid = Volume(np.zeros(prepared.head_mask.shape, np.uint8), prepared.working_affine)
        moved = resample_to(reference=grid, moving=Volume(mask.array.astype(np.uint8), mask.affine),
                            matrix=np.eye(4), interpolation="nearest")
        return np.asarray(moved.array) > 0
