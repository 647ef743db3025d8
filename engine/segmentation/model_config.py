"""A shipped model's configuration: ``models/<name>/config.json`` loaded into a frozen dataclass.

The file says which MONAI network to build (class name + keyword arguments), the input channel
order, what each output channel means, the working spacing and where the weights are. A test
loads every shipped config.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config_loading import build_config
from engine.errors import ConfigError
from engine.types import Label, Sequence

#: keys of :meth:`ModelConfig.to_json` left out of :meth:`ModelConfig.config_sha256`: identity that
#: has its own store columns (name, version; the weights are keyed by their content's hash, not
#: their file name) and descriptive text that changes no output (how the weights were trained,
#: how the decision weights were chosen: the weights themselves and ``decision_weights`` are in).
NOT_DIGESTED = frozenset({"name", "version", "weights_file", "training", "calibration"})

#: MONAI network classes a config may name (``monai.networks.nets.<name>``).
SUPPORTED_ARCHITECTURES = frozenset({"SegResNet", "UNet", "BasicUNet", "DynUNet"})


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """What a GlioWatch model is and how to run it."""

    name: str
    version: str
    architecture: str
    network: Mapping[str, Any]
    #: input channel order of the network.
    channels: tuple[Sequence, ...]
    #: output channel index -> label; channel 0 is background.
    output_labels: Mapping[int, Label]
    spacing_mm: float
    #: working grid sides are padded to a multiple of this (the network's total stride).
    divisible_by: int = 16
    #: largest working grid run in one pass; bigger grids go through a sliding window.
    max_whole_volume_vox: tuple[int, int, int] = (160, 192, 160)
    weights_file: str = "model.pt"
    model_dir: Path | None = None
    training: Mapping[str, Any] = field(default_factory=dict)
    #: per-label weights of the argmax (engine.segmentation.decision); labels not named weigh 1.
    decision_weights: Mapping[Label, float] = field(default_factory=dict)
    #: how the decision weights were chosen (``gliowatch calibrate``), as written there.
    calibration: Mapping[str, Any] = field(default_factory=dict)
    #: test-time mirroring: each entry is a set of spatial axes (0 = x, the left-right axis of
    #: the working grid) to flip; the softmax of every mirrored pass is flipped back and averaged
    #: with the plain pass. Empty (the default): one plain pass.
    test_time_flips: tuple[tuple[int, ...], ...] = ()
    #: resection-cavity components (26-connected, on the reference grid) smaller than this many
    #: mL become background (:func:`engine.segmentation.sanity.remove_small_cavities`); 0, the
    #: default, keeps every one. Part of the decision rule: it acts on the labels, after the
    #: probabilities.
    min_cavity_ml: float = 0.0

    def __post_init__(self) -> None:
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            msg = (
                f"Argument 'architecture' must be one of {sorted(SUPPORTED_ARCHITECTURES)}, "
                f"got {self.architecture!r}"
            )
            raise ValueError(msg)
        if self.spacing_mm <= 0:
            msg = f"Argument 'spacing_mm' must be positive, got {self.spacing_mm}"
            raise ValueError(msg)
        if len(self.channels) != int(self.network.get("in_channels", len(self.channels))):
            msg = (
                f"Argument 'channels' has {len(self.channels)} entries but the network takes "
                f"{self.network.get('in_channels')} input channels"
            )
            raise ValueError(msg)
        if 0 in self.output_labels:
            msg = "Argument 'output_labels' must not map channel 0 (background)"
            raise ValueError(msg)
        from engine.segmentation.decision import MAX_WEIGHT

        bad = {k.name: v for k, v in self.decision_weights.items() if not 0.0 < float(v) < MAX_WEIGHT}
        if bad:
            msg = f"Argument 'decision_weights' must lie in (0, {MAX_WEIGHT:g}), got {bad}"
            raise ValueError(msg)
        if not (math.isfinite(self.min_cavity_ml) and self.min_cavity_ml >= 0.0):
            msg = f"Argument 'min_cavity_ml' must be a finite number of mL >= 0, got {self.min_cavity_ml}"
            raise ValueError(msg)
        bad_flips = [f for f in self.test_time_flips if not f or any(a not in (0, 1, 2) for a in f) or len(set(f)) != len(f)]
        if bad_flips:
            msg = f"Argument 'test_time_flips' must list non-empty sets of spatial axes 0, 1, 2, got {bad_flips}"
            raise ValueError(msg)

    @property
    def num_outputs(self) -> int:
        return max(self.output_labels) + 1

    @property
    def weights_path(self) -> Path:
        base = self.model_dir if self.model_dir is not None else Path(".")
        return base / self.weights_file

    def config_sha256(self) -> str:
        """SHA-256 of what in this config determines the labels: :meth:`to_json` without the
        keys in :data:`NOT_DIGESTED` (name, version, weights file name, ``training``,
        ``calibration``), as canonical JSON (:func:`canonical_sha256`).

        So editing ``decision_weights``, ``test_time_flips``, ``spacing_mm``, the network or the
        channel order changes the digest; rewording the training notes or re-running
        ``gliowatch calibrate`` to the same weights does not. Stored segmentations are keyed on it
        (with name, version and weights hash), so a changed config never overwrites a result.
        """
        return canonical_sha256({k: v for k, v in self.to_json().items() if k not in NOT_DIGESTED})

    def probabilities_sha256(self) -> str:
        """SHA-256 of what in this config determines the class probabilities: as
        :meth:`config_sha256`, less the decision rule (``decision_weights``, ``min_cavity_ml``), which acts on the
        probabilities afterwards. ``gliowatch calibrate`` keys its cached probabilities on it (with
        the weights' hash), so a working spacing or mirroring change is never served probabilities
        computed under another, while writing new decision weights keeps the cache valid.
        """
        skip = NOT_DIGESTED | {"decision_weights", "min_cavity_ml"}
        return canonical_sha256({k: v for k, v in self.to_json().items() if k not in skip})

    def to_json(self) -> dict[str, Any]:
        """The dictionary :func:`load_model_config` reads back (without ``model_dir``)."""
        return {
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture,
            "network": dict(self.network),
            "channels": [str(c) for c in self.channels],
            "output_labels": {str(k): v.name for k, v in sorted(self.output_labels.items())},
            "spacing_mm": self.spacing_mm,
            "divisible_by": self.divisible_by,
            "max_whole_volume_vox": list(self.max_whole_volume_vox),
            "weights_file": self.weights_file,
            "training": dict(self.training),
            **({"decision_weights": {k.name: v for k, v in self.decision_weights.items()}}
               if self.decision_weights else {}),
            **({"calibration": dict(self.calibration)} if self.calibration else {}),
            **({"test_time_flips": [list(f) for f in self.test_time_flips]} if self.test_time_flips else {}),
            **({"min_cavity_ml": self.min_cavity_ml} if self.min_cavity_ml else {}),
        }


def canonical_sha256(data: Any) -> str:
    """SHA-256 (hex) of ``data`` as canonical JSON: sorted keys, compact separators, UTF-8.

    >>> canonical_sha256({"b": 1, "a": [1.5]}) == canonical_sha256({"a": [1.5], "b": 1})
    True
    """
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_config_from_dict(data: Mapping[str, Any], *, model_dir: Path | None = None) -> ModelConfig:
    """Build a :class:`ModelConfig` from the JSON dictionary (``engine.config_loading``, lenient:
    numbers may come as strings; keys it does not know are left out); raise ``ConfigError`` when
    invalid."""
    where = str(model_dir) if model_dir else "model config"
    return build_config(ModelConfig, data, source=f"Model config {where}", lenient=True,
                        unknown_keys="ignore", given={"model_dir": model_dir})


def load_model_config(model_dir: Path | str) -> ModelConfig:
    """Read ``<model_dir>/config.json``."""
    model_dir = Path(model_dir)
    path = model_dir / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"Model config {path} does not exist",
            action="Set segmentation.model_dir to a folder with config.json and the weights.",
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Model config {path} is not valid JSON", detail=str(exc)) from exc
    return model_config_from_dict(data, model_dir=model_dir)


def default_model_config(
    *, name: str = "gliowatch-unet", version: str = "0.3.0", spacing_mm: float = 1.0
) -> ModelConfig:
    """The architecture `gliowatch train` builds by default (measured choice, see MODEL_CARD.md).

    MONAI UNet 16-32-64-128-256, 2 residual units per level (4.8 M parameters), batch norm, 4 input
    channels T1, T1c, T2, FLAIR, 5 outputs (background + NETC, SNFH, ET, RC) at 1.0 mm isotropic
    (0.2.0 worked at 1.5 mm; thin enhancing rims next to a cavity cover too few voxels there).
    Batch norm (running statistics at inference) makes every output voxel depend on its
    neighbourhood only, so a whole-volume pass and a sliding window agree; instance norm (0.1.0)
    normalised over whatever the network was shown, and the two differed.
    """
    return ModelConfig(
        name=name,
        version=version,
        architecture="UNet",
        network={
            "in_channels": 4,
            "channels": [16, 32, 64, 128, 256],
            "strides": [2, 2, 2, 2],
            "num_res_units": 2,
            "norm": "batch",
        },
        channels=(Sequence.T1, Sequence.T1C, Sequence.T2, Sequence.FLAIR),
        output_labels={1: Label.NETC, 2: Label.SNFH, 3: Label.ET, 4: Label.RC},
        spacing_mm=spacing_mm,
        divisible_by=16,
        max_whole_volume_vox=whole_volume_limit(spacing_mm, multiple=32),
    )


#: the largest field of view run in one pass, mm (an adult head with margin, any orientation).
WHOLE_VOLUME_FOV_MM = (288.0, 336.0, 288.0)


def whole_volume_limit(spacing_mm: float, *, multiple: int) -> tuple[int, int, int]:
    """``max_whole_volume_vox`` for a working spacing: WHOLE_VOLUME_FOV_MM in voxels, rounded
    down to ``multiple``.

    >>> whole_volume_limit(1.5, multiple=32), whole_volume_limit(1.0, multiple=32)
    ((192, 224, 192), (288, 320, 288))
    """
    return tuple(max(multiple, int(mm / spacing_mm) // multiple * multiple) for mm in WHOLE_VOLUME_FOV_MM)  # type: ignore[return-value]
