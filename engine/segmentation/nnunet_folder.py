"""What GlioWatch reads from an nnU-Net v2 trained-model folder, before any weights are loaded.

::

    MODEL/dataset.json                  "channel_names" {"0": "T1", ...}, "labels" {"background": 0, ...}
    MODEL/plans.json                    nnU-Net's plans (image_reader_writer, configurations)
    MODEL/fold_N/checkpoint_final.pth   one per trained fold (``fold_all`` for a model trained on all)

Channel names map to GlioWatch sequences (:func:`channel_sequence`); label values map to
GlioWatch labels through a declared mapping (:data:`LABEL_PRESETS` or an explicit table). A model
whose labels the mapping does not cover, a missing fold or an unknown channel is refused with a
:class:`~engine.errors.ConfigError` naming the model and the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.segmentation.model_config import canonical_sha256
from engine.segmentation.network import file_sha256
from engine.types import Label, Sequence

#: label value of a model's output -> GlioWatch label (clinical-spec section 6.1).
LABEL_PRESETS: dict[str, dict[int, Label]] = {
    # BraTS 2021: 1 necrotic tumour core (NCR), 2 peritumoural oedema (ED), 4 enhancing tumour
    "brats2021": {1: Label.NETC, 2: Label.SNFH, 4: Label.ET},
    # BraTS 2023 adult glioma: the same regions, enhancing tumour renumbered 3
    "brats2023": {1: Label.NETC, 2: Label.SNFH, 3: Label.ET},
    # BraTS 2024 post-treatment: 1 NETC, 2 SNFH, 3 ET, 4 resection cavity
    "brats2024-post": {1: Label.NETC, 2: Label.SNFH, 3: Label.ET, 4: Label.RC},
}
#: channel name (lower case, letters and digits only) -> sequence.
CHANNEL_ALIASES: dict[str, Sequence] = {
    **dict.fromkeys(("t1", "t1n", "t1w", "t1native", "t1pre"), Sequence.T1),
    **dict.fromkeys(("t1c", "t1ce", "t1gd", "t1post", "t1contrast", "t1wce", "t1cgd"), Sequence.T1C),
    **dict.fromkeys(("t2", "t2w"), Sequence.T2),
    **dict.fromkeys(("flair", "t2f", "t2flair", "t2wflair"), Sequence.FLAIR),
}
#: dataset.json label names that say which region a value is (lower case, letters and digits only).
LABEL_NAME_HINTS: dict[str, Label] = {
    **dict.fromkeys(("netc", "ncr", "necrosis", "necrotic", "necroticcore", "nonenhancingtumorcore"), Label.NETC),
    **dict.fromkeys(("snfh", "ed", "edema", "oedema", "peritumoraledema"), Label.SNFH),
    **dict.fromkeys(("et", "enhancing", "enhancingtumor", "enhancingtissue"), Label.ET),
    **dict.fromkeys(("rc", "cavity", "resectioncavity"), Label.RC),
}
CHECKPOINT = "checkpoint_final.pth"
#: the readers nnU-Net uses for NIfTI: how they order a volume's axes (see NnUNetSegmenter).
READERS = {"SimpleITKIO": "zyx", "NibabelIO": "xyz"}


def channel_sequence(name: str, *, model: str) -> Sequence:
    """The sequence a ``dataset.json`` channel name means.

    >>> [str(channel_sequence(n, model="m")) for n in ("T1", "t1c", "T1Gd", "t2w", "T2-FLAIR", "t2f")]
    ['T1', 'T1c', 'T1c', 'T2', 'FLAIR', 'FLAIR']
    """
    key = re.sub(r"[^a-z0-9]", "", str(name).lower())
    if key not in CHANNEL_ALIASES:
        msg = f"nnU-Net model {model}: input channel {name!r} is not a sequence GlioWatch knows"
        raise ConfigError(msg, action="Name the channels T1, T1c, T2 and FLAIR (or t1n, t1c, t2w, t2f) in dataset.json.")
    return CHANNEL_ALIASES[key]


def label_mapping(spec: str | Mapping[Any, Any], *, model: str) -> dict[int, Label]:
    """A preset name or an explicit ``{value: label name}`` table -> ``{value: Label}``.

    >>> label_mapping({"1": "NETC", "2": "SNFH", "3": "ET"}, model="m")[3].name
    'ET'
    """
    if isinstance(spec, str):
        if spec not in LABEL_PRESETS:
            msg = f"nnU-Net model {model}: unknown label mapping {spec!r}"
            raise ConfigError(msg, action=f"Use one of {sorted(LABEL_PRESETS)} or an explicit label_map table.")
        return dict(LABEL_PRESETS[spec])
    mapping: dict[int, Label] = {}
    for value, name in spec.items():
        label = name if isinstance(name, Label) else Label.__members__.get(str(name).upper())
        if label is None or not str(value).isdigit() or int(value) == 0:
            msg = f"nnU-Net model {model}: label_map entry {value!r} = {name!r} is not 'value = NETC|SNFH|ET|RC'"
            raise ConfigError(msg)
        mapping[int(value)] = label
    if not mapping:
        raise ConfigError(f"nnU-Net model {model}: the label_map is empty")
    return mapping


@dataclass(frozen=True, slots=True)
class NnUNetFolder:
    """A checked trained-model folder: channels, output values and their labels, folds, hashes."""

    root: Path
    name: str
    channels: tuple[Sequence, ...]
    #: output label value -> GlioWatch label (every value the model can output is covered).
    labels: dict[int, Label]
    folds: tuple[str, ...]
    #: "zyx" (SimpleITK) or "xyz" (nibabel): the axis order the model was trained on.
    axes: str
    version: str
    weights_sha256: str
    config_sha256: str
    dataset_json: dict[str, Any]
    plans: dict[str, Any]

    @property
    def checkpoints(self) -> tuple[Path, ...]:
        return tuple(self.root / f"fold_{f}" / CHECKPOINT for f in self.folds)


def read_nnunet_folder(
    root: Path | str, *, labels: str | Mapping[Any, Any], folds: tuple[str, ...] = (), name: str = "",
    decoding: Mapping[str, Any] | None = None,
) -> NnUNetFolder:
    """Check ``root`` and describe it; ``folds`` empty = every ``fold_*`` with a final checkpoint.

    ``decoding`` (e.g. mirroring, tile step) goes into the config hash with plans.json,
    dataset.json, the folds and the label mapping: everything that decides the output but the weights.
    """
    root = Path(root)
    name = name or root.name
    dataset_json, plans = _read_json(root / "dataset.json", name), _read_json(root / "plans.json", name)
    channels = dataset_channels(dataset_json, model=name)
    mapping = label_mapping(labels, model=name)
    outputs = output_values(dataset_json)
    uncovered = sorted(set(outputs) - set(mapping))
    if uncovered:
        names = ", ".join(f"{v} ({outputs[v]})" for v in uncovered)
        msg = f"nnU-Net model {name}: output label(s) {names} are not covered by the label mapping {labels!r}"
        raise ConfigError(msg, action="Choose the preset of the model's convention or give an explicit label_map.")
    for value, label_name in outputs.items():
        hint = LABEL_NAME_HINTS.get(re.sub(r"[^a-z0-9]", "", label_name.lower()))
        if hint is not None and mapping[value] is not hint:
            msg = (f"nnU-Net model {name}: label {value} is named {label_name!r} in dataset.json, but the label "
                   f"mapping {labels!r} makes it {mapping[value].name}")
            raise ConfigError(msg, action="Check which convention the model was trained with (nnU-Net's own BraTS "
                              "conversions renumber the labels) and give the matching preset or label_map.")
    chosen = tuple(str(f) for f in folds) or _available_folds(root)
    missing = [f for f in chosen if not (root / f"fold_{f}" / CHECKPOINT).is_file()]
    if not chosen or missing:
        present = ", ".join(_available_folds(root)) or "none"
        what = f"fold(s) {', '.join(missing)} have" if missing else "no fold has"
        msg = f"nnU-Net model {name}: {what} no fold_N/{CHECKPOINT} (folds present: {present})"
        raise ConfigError(msg, action="Copy the missing fold folders or list only the folds present.")
    reader = str(plans.get("image_reader_writer", "SimpleITKIO"))
    if reader not in READERS:
        msg = f"nnU-Net model {name}: image reader {reader!r} is not supported (only {', '.join(READERS)})"
        raise ConfigError(msg)
    used = {v: mapping[v] for v in outputs}
    weights = hashlib.sha256()
    for f in chosen:
        weights.update(f"fold_{f}:{file_sha256(root / f'fold_{f}' / CHECKPOINT)}\n".encode())
    config_sha = canonical_sha256({
        "plans": plans, "dataset_json": dataset_json, "folds": list(chosen),
        "labels": {str(v): lab.name for v, lab in sorted(used.items())}, "decoding": dict(decoding or {}),
    })
    return NnUNetFolder(
        root=root, name=name, channels=channels, labels=used, folds=chosen, axes=READERS[reader],
        version=f"{plans.get('plans_name', 'plans')}/{_trainer_folder(root)}/folds-{'+'.join(chosen)}",
        weights_sha256=weights.hexdigest(), config_sha256=config_sha, dataset_json=dataset_json, plans=plans,
    )


def model_channels(root: Path | str, *, model: str) -> tuple[Sequence, ...]:
    """The sequences of a folder's dataset.json, in channel order (no weights read)."""
    return dataset_channels(_read_json(Path(root) / "dataset.json", model), model=model)


def dataset_channels(dataset_json: Mapping[str, Any], *, model: str) -> tuple[Sequence, ...]:
    channel_names = dataset_json.get("channel_names") or dataset_json.get("modality") or {}
    if not channel_names:
        raise ConfigError(f"nnU-Net model {model}: dataset.json has no channel_names")
    channels = tuple(channel_sequence(channel_names[k], model=model) for k in sorted(channel_names, key=int))
    if len(set(channels)) != len(channels):
        raise ConfigError(f"nnU-Net model {model}: two input channels are the same sequence ({channel_names})")
    return channels


def output_values(dataset_json: Mapping[str, Any]) -> dict[int, str]:
    """Label values the model can output -> their names in dataset.json (background and the
    ignore label left out; a region-based model outputs its ``regions_class_order``).

    >>> output_values({"labels": {"background": 0, "NCR": 1, "ED": 2, "ET": 4, "ignore": 5}})
    {1: 'NCR', 2: 'ED', 4: 'ET'}
    """
    labels = dict(dataset_json.get("labels", {}))
    labels.pop("ignore", None)
    if any(isinstance(v, list | tuple) for v in labels.values()):  # regions: the i-th gets regions_class_order[i]
        order = dataset_json.get("regions_class_order") or []
        regions = [k for k, v in labels.items() if v != 0 and v != [0]]
        return {int(v): name for name, v in zip(regions, order, strict=False) if int(v) != 0}
    return {int(v): str(k) for k, v in labels.items() if int(v) != 0}


def _available_folds(root: Path) -> tuple[str, ...]:
    found = [p.parent.name.removeprefix("fold_") for p in root.glob(f"fold_*/{CHECKPOINT}")]
    return tuple(sorted(found, key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0, f)))


def _trainer_folder(root: Path) -> str:
    """``Trainer__Plans__config`` when the folder keeps nnU-Net's name, else its own name."""
    return root.name if root.name.count("__") == 2 else "model"


def _read_json(path: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        msg = f"nnU-Net model {name}: {path.name} is missing in {path.parent}"
        raise ConfigError(msg, action="Point the model's path at an nnU-Net v2 trained-model folder.") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"nnU-Net model {name}: {path.name} is not valid JSON", detail=str(exc)) from exc
