"""Bring your own model: a MONAI bundle in the ``brats_mri_segmentation`` layout.

::

    BUNDLE/configs/inference.json   "network_def" (a MONAI config of the network), optional
                                    "inferer": {"roi_size": [...]}
    BUNDLE/configs/metadata.json    optional: input "channel_def", output "channel_def"
    BUNDLE/models/model.pt          the state dict (or {"model": state_dict})

Two kinds of output are understood:

* **regions** (the MONAI zoo's brats_mri_segmentation): 3 sigmoid channels tumour core, whole
  tumour, enhancing tumour -> ET where ET > 0.5, else NETC where TC > 0.5, else SNFH where
  WT > 0.5 (the bundle's own post-processing order);
* **labels**: softmax over label values of a BraTS convention, mapped to GlioWatch's labels
  (:data:`LABEL_CONVENTIONS`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import ConfigError, SegmentationError
from engine.segmentation.inference import (
    finish_result, for_device, run_network, select_device, softmax_decoder,
)
from engine.segmentation.model_config import canonical_sha256
from engine.segmentation.network import file_sha256, load_state_dict
from engine.segmentation.preprocess import prepare_study
from engine.segmentation.result import SegmentationResult
from engine.segmentation.sanity import SanityLimits
from engine.types import Label, Sequence, Volume

if TYPE_CHECKING:
    import torch

#: label value in a model's output convention -> GlioWatch label (clinical-spec section 6.1).
LABEL_CONVENTIONS: dict[str, dict[int, Label]] = {
    # BraTS 2013-2015: 1 necrosis, 2 oedema, 3 non-enhancing tumour, 4 enhancing tumour
    "brats2015": {1: Label.NETC, 2: Label.SNFH, 3: Label.NETC, 4: Label.ET},
    "brats2021": {1: Label.NETC, 2: Label.SNFH, 4: Label.ET},
    "brats2023": {1: Label.NETC, 2: Label.SNFH, 3: Label.ET},
    "brats2024": {1: Label.NETC, 2: Label.SNFH, 3: Label.ET, 4: Label.RC},
}
#: the zoo bundle's input order when metadata.json does not say.
DEFAULT_BUNDLE_CHANNELS: tuple[Sequence, ...] = (Sequence.T1C, Sequence.T1, Sequence.T2, Sequence.FLAIR)
CHANNEL_NAMES = {"t1c": Sequence.T1C, "t1ce": Sequence.T1C, "t1gd": Sequence.T1C, "t1": Sequence.T1,
                  "t1n": Sequence.T1, "t2": Sequence.T2, "t2w": Sequence.T2, "flair": Sequence.FLAIR,
                  "t2f": Sequence.FLAIR}
_REGION_NAMES = ("tumor core", "whole tumor", "enhancing tumor")


def map_labels(labels: np.ndarray, *, convention: str) -> np.ndarray:
    """Relabel an array from a BraTS convention to GlioWatch labels (unknown values -> 0).

    >>> map_labels(np.array([0, 1, 2, 4], dtype=np.uint8), convention="brats2021").tolist()
    [0, 1, 2, 3]
    """
    mapping = label_convention(convention)
    lut = np.zeros(256, dtype=np.uint8)
    for value, label in mapping.items():
        lut[value] = int(label)
    return lut[labels.astype(np.uint8)]


def label_convention(name: str) -> dict[int, Label]:
    if name not in LABEL_CONVENTIONS:
        msg = f"Unknown label convention {name!r}"
        raise ConfigError(msg, action=f"Set segmentation.bundle_labels to one of {sorted(LABEL_CONVENTIONS)}.")
    return LABEL_CONVENTIONS[name]


def regions_decoder(threshold: float = 0.5) -> Callable[[torch.Tensor], np.ndarray]:
    """TC / WT / ET sigmoid maps -> labels, in the zoo bundle's order (ET, then TC, then WT)."""

    def decode(regions: torch.Tensor) -> np.ndarray:
        tc, wt, et = (regions[i].numpy() > threshold for i in range(3))
        out = np.zeros(tc.shape, dtype=np.uint8)
        out[wt] = int(Label.SNFH)
        out[tc] = int(Label.NETC)
        out[et] = int(Label.ET)
        return out

    return decode


@dataclass(frozen=True, slots=True)
class BundleSpec:
    """What GlioWatch reads from a bundle directory."""

    root: Path
    network_def: Mapping[str, Any]
    channels: tuple[Sequence, ...]
    output: str  # "regions" | "labels"
    spacing_mm: float
    roi_vox: tuple[int, int, int] | None
    version: str


def read_bundle(root: Path | str, *, spacing_mm: float = 1.0) -> BundleSpec:
    """Read configs/inference.json (+ metadata.json) of a bundle; raise ``ConfigError`` if unusable."""
    root = Path(root)
    config = _read_json(root / "configs" / "inference.json")
    if "network_def" not in config:
        raise ConfigError(f"Bundle {root} has no 'network_def' in configs/inference.json")
    meta_path = root / "configs" / "metadata.json"
    meta = _read_json(meta_path) if meta_path.exists() else {}
    formats = meta.get("network_data_format", {})
    inputs = formats.get("inputs", {}).get("image", {}).get("channel_def", {})
    outputs = formats.get("outputs", {}).get("pred", {}).get("channel_def", {})
    channels = DEFAULT_BUNDLE_CHANNELS
    if inputs:
        try:
            channels = tuple(CHANNEL_NAMES[str(inputs[str(i)]).strip().lower()] for i in range(len(inputs)))
        except KeyError as exc:
            raise ConfigError(f"Bundle {root}: input channel {exc.args[0]!r} is not a known sequence") from exc
    names = tuple(str(outputs.get(str(i), "")).strip().lower() for i in range(len(outputs)))
    n_out = int(config["network_def"].get("out_channels", 0))
    output = "regions" if names == _REGION_NAMES or (not names and n_out == 3) else "labels"
    roi = config.get("inferer", {}).get("roi_size")
    return BundleSpec(
        root=root,
        network_def=config["network_def"],
        channels=channels,
        output=output,
        spacing_mm=spacing_mm,
        roi_vox=tuple(int(v) for v in roi) if roi else None,  # type: ignore[arg-type]
        version=str(meta.get("version", "unknown")),
    )


def bundle_config_sha256(spec: BundleSpec, convention: Mapping[int, Label]) -> str:
    """SHA-256 (canonical JSON) of what determines a bundle's labels in GlioWatch.

    From configs/inference.json only what is used: ``network_def`` and the inferer's
    ``roi_size`` (the rest of its inferer settings are not read); from metadata.json the input
    channel order and the output kind it implies; the working spacing; and the decoding: the
    fixed region order for region outputs, else the label mapping of ``segmentation.bundle_labels``.
    The bundle's ``version`` is left out (a store column of its own); the weights are hashed
    separately.
    """
    decoding: Any = "regions: ET > 0.5, else TC > 0.5 -> NETC, else WT > 0.5 -> SNFH"
    if spec.output == "labels":
        decoding = {str(value): label.name for value, label in sorted(convention.items())}
    return canonical_sha256({
        "network_def": spec.network_def,
        "roi_vox": list(spec.roi_vox) if spec.roi_vox else None,
        "channels": [str(c) for c in spec.channels],
        "output": spec.output,
        "spacing_mm": spec.spacing_mm,
        "decoding": decoding,
    })


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"Bundle file {path} does not exist",
            action="Point segmentation.bundle_dir at a bundle in the brats_mri_segmentation layout.",
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Bundle file {path} is not valid JSON", detail=str(exc)) from exc


def build_bundle_network(spec: BundleSpec) -> torch.nn.Module:
    """Instantiate ``network_def`` with MONAI's ConfigParser and load models/model.pt."""
    from monai.bundle import ConfigParser

    parser = ConfigParser({"network_def": dict(spec.network_def)})
    try:
        net = parser.get_parsed_content("network_def")
    except Exception as exc:  # noqa: BLE001 - any failure of a user's config is a config error
        raise ConfigError(f"Bundle {spec.root}: network_def cannot be built", detail=repr(exc)) from exc
    try:
        net.load_state_dict(load_state_dict(spec.root / "models" / "model.pt"))
    except RuntimeError as exc:
        raise ConfigError(f"Bundle {spec.root}: models/model.pt does not fit network_def", detail=str(exc)[:2000]) from exc
    return net.eval()


class BundleSegmenter:
    """A user's MONAI bundle as a :class:`Segmenter`."""

    def __init__(
        self,
        *,
        bundle_dir: Path | str,
        labels: str = "brats2024",
        device: str = "auto",
        spacing_mm: float = 1.0,
        limits: SanityLimits = SanityLimits(),
        align_sequences: bool = False,
    ) -> None:
        self.spec = read_bundle(bundle_dir, spacing_mm=spacing_mm)
        self.align_sequences = align_sequences
        self.convention = label_convention(labels)
        self.device = select_device(device)
        self.net = for_device(build_bundle_network(self.spec), self.device)
        self.weights_sha256 = file_sha256(self.spec.root / "models" / "model.pt")
        self.config_sha256 = bundle_config_sha256(self.spec, self.convention)
        self.limits = limits
        self.name = f"bundle:{self.spec.root.name}"

    def segment(
        self, volumes: Mapping[Sequence, Volume], *, exam: str | None = None
    ) -> SegmentationResult:
        start = time.perf_counter()
        try:
            prepared = prepare_study(volumes, channels=self.spec.channels, spacing_mm=self.spec.spacing_mm, divisible_by=16,
                                     align=self.align_sequences)
        except SegmentationError as exc:
            raise SegmentationError(exc.message, exam=exam, action=exc.action, detail=exc.detail) from exc
        roi = self.spec.roi_vox or (160, 192, 160)
        logits = run_network(self.net, prepared.image, device=self.device, max_whole_volume_vox=roi, roi_vox=roi)
        if self.spec.output == "regions":
            maps, decode = logits.sigmoid(), regions_decoder()
        else:
            maps, decode = logits.softmax(0), softmax_decoder({c: lab for c, lab in self.convention.items() if c < logits.shape[0]})
        return finish_result(
            maps,
            prepared=prepared,
            decode=decode,
            limits=self.limits,
            identity=(self.name, self.spec.version, self.weights_sha256, self.config_sha256, str(self.device)),
            start=start,
        )


__all__ = ["BundleSegmenter", "LABEL_CONVENTIONS", "bundle_config_sha256", "map_labels", "read_bundle"]
