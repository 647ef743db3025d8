"""What a segmentation returns, and the role every segmenter plays."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from engine.types import Sequence, Volume


@dataclass(frozen=True, slots=True, eq=False)
class SegmentationResult:
    """Labels on the reference (T1c) grid, volumes per label and the flags people must see."""

    #: uint8 labels (0 background, engine.types.Label values) on the reference grid, RAS affine.
    labels: Volume
    #: mL per label name: keys NETC, SNFH, ET, RC.
    volumes_ml: dict[str, float]
    #: e.g. "missing_sequence:FLAIR", "realigned:FLAIR" (the patient moved; that sequence was
    #: rigidly realigned onto the reference), "empty_output", "tumour_outside_brain",
    #: "implausible_volume:SNFH=900mL".
    flags: tuple[str, ...]
    model_name: str
    model_version: str
    weights_sha256: str
    #: SHA-256 of the model configuration that determines the outputs (for the shipped model
    #: ``ModelConfig.config_sha256``; for a bundle ``BundleSegmenter.config_sha256``).
    config_sha256: str
    device: str
    elapsed_s: float

    def provenance(self) -> dict[str, object]:
        """Which model made this result, where and how fast: the record written beside it
        (the pipeline's JSON sidecar, ``gliowatch segment --volumes``)."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "weights_sha256": self.weights_sha256,
            "config_sha256": self.config_sha256,
            "device": self.device,
            "elapsed_s": round(self.elapsed_s, 3),
        }


@runtime_checkable
class Segmenter(Protocol):
    """Anything that turns one study's volumes into a :class:`SegmentationResult`."""

    def segment(
        self, volumes: Mapping[Sequence, Volume], *, exam: str | None = None
    ) -> SegmentationResult: ...
