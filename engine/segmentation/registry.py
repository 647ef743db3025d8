"""The model registry: the configured models, and the choice of one per study.

``[[segmentation.models]]`` entries (:class:`engine.settings.ModelEntry`) are listed best first.
The settings of before the registry stay valid: ``segmentation.model_dir`` (or ``bundle_dir``)
is the implicit entry ``default``, tried last, and ``stripped_model_dir`` the implicit entry
``skull-stripped`` (used by :class:`~engine.segmentation.input_kind.InputRouter`).

For each study :class:`ModelChooser` runs the first entry whose required sequences are present.
When that is not the first entry, the result carries the flag ``reduced_input:<name>`` and its
label metadata says which models were passed over and why. Models are loaded on first use; a
model that cannot be loaded, or a study no model can run on, is a
:class:`~engine.errors.SegmentationError` naming the model, the study and the reason, so the
pipeline quarantines the study instead of publishing a number.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from engine.errors import ConfigError, SegmentationError
from engine.segmentation.result import SegmentationResult, Segmenter
from engine.settings import ModelEntry, SegmentationSettings
from engine.types import Sequence, Volume

DEFAULT_NAME = "default"
STRIPPED_NAME = "skull-stripped"
#: an entry that declares no sequences needs one of these (the reference grid).
ANY_REFERENCE: tuple[Sequence, ...] = (Sequence.T1C, Sequence.T1)
REDUCED_INPUT = "reduced_input"


def implicit_entries(settings: SegmentationSettings) -> tuple[ModelEntry, ...]:
    """``model_dir`` / ``bundle_dir`` as ``default`` and ``stripped_model_dir`` as ``skull-stripped``."""
    if settings.bundle_dir:
        main = ModelEntry(name=DEFAULT_NAME, kind="monai-bundle", path=settings.bundle_dir, labels=settings.bundle_labels)
    else:
        main = ModelEntry(name=DEFAULT_NAME, kind=_folder_kind(settings.model_dir), path=settings.model_dir)
    if not settings.stripped_model_dir:
        return (main,)
    stripped = ModelEntry(name=STRIPPED_NAME, kind=_folder_kind(settings.stripped_model_dir),
                          path=settings.stripped_model_dir)
    return main, stripped


def registry_entries(settings: SegmentationSettings) -> tuple[ModelEntry, ...]:
    """Every model the settings name: the configured entries, then the implicit ones."""
    implicit = implicit_entries(settings)
    clash = {e.name for e in settings.models} & {e.name for e in implicit}
    if clash:
        msg = f"segmentation.models uses the reserved name(s) {', '.join(sorted(clash))}"
        raise ConfigError(msg, action=f"'{DEFAULT_NAME}' and '{STRIPPED_NAME}' name segmentation.model_dir and "
                          "stripped_model_dir; choose another name.")
    return (*settings.models, *implicit)


def find_entry(settings: SegmentationSettings, name: str) -> ModelEntry:
    entries = registry_entries(settings)
    for entry in entries:
        if entry.name == name:
            return entry
    msg = f"No segmentation model is named {name!r}"
    raise ConfigError(msg, action=f"Use one of: {', '.join(e.name for e in entries)} (gliowatch models list).")


def required_sequences(entry: ModelEntry) -> tuple[Sequence, ...]:
    """What the entry declares plus, for an nnU-Net folder, every channel of its dataset.json
    (read without loading weights; an unreadable folder adds nothing here and fails at load)."""
    declared = tuple(_sequence(s, model=entry.name) for s in entry.sequences)
    if entry.kind != "nnunet":
        return declared
    from engine.segmentation.loading import resolve_model_dir
    from engine.segmentation.nnunet_folder import model_channels

    try:
        channels = model_channels(resolve_model_dir(entry.path), model=entry.name)
    except ConfigError:
        channels = ()
    return (*declared, *(c for c in channels if c not in declared))


def can_run(entry: ModelEntry, present: set[Sequence]) -> tuple[bool, str]:
    """Whether the entry's sequences are all present; the reason when not."""
    needed = required_sequences(entry)
    if not needed:
        return (True, "") if present & set(ANY_REFERENCE) else (False, "needs T1c or T1")
    missing = [str(s) for s in needed if s not in present]
    return (not missing, f"needs {', '.join(missing)}" if missing else "")


def build_segmenter(entry: ModelEntry, settings: SegmentationSettings) -> Segmenter:
    """Load one entry (a ``ConfigError`` when it cannot be loaded)."""
    from engine.segmentation.loading import load_model, resolve_model_dir

    device = entry.device or settings.device
    if entry.kind == "nnunet":
        from engine.segmentation.nnunet import NnUNetSegmenter

        if not entry.label_map and not entry.labels:
            msg = f"nnU-Net model {entry.name} declares no label mapping"
            raise ConfigError(msg, action="Set labels = 'brats2021' | 'brats2023' | 'brats2024-post' or a label_map table.")
        segmenter: Segmenter = NnUNetSegmenter(
            model_dir=resolve_model_dir(entry.path), labels=entry.label_map or entry.labels, folds=entry.folds,
            mirroring=entry.mirroring, device=device, name=entry.name, align_sequences=settings.align_sequences)
    elif entry.kind == "monai-bundle":
        local = dataclasses.replace(settings, device=device, bundle_dir=entry.path,
                                    bundle_labels=entry.labels or settings.bundle_labels)
        segmenter = load_model(local, "", bundle=True)
    else:  # builtin | anomaly: a model folder of GlioWatch's own
        segmenter = load_model(dataclasses.replace(settings, device=device), entry.path, bundle=False)
    if entry.space == "brats-sri24":
        from engine.segmentation.brats_space import BratsSpaceSegmenter

        segmenter = BratsSpaceSegmenter(segmenter, model=entry.name, atlas=settings.atlas_path)
    return segmenter


@dataclass(slots=True)
class ModelChooser:
    """:class:`Segmenter` that runs, per study, the first entry whose sequences are present."""

    entries: tuple[ModelEntry, ...]
    settings: SegmentationSettings
    loader: Callable[[ModelEntry, SegmentationSettings], Segmenter] = build_segmenter
    _loaded: dict[str, Segmenter | ConfigError] = dataclasses.field(default_factory=dict)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.entries:
            msg = "Argument 'entries' must hold at least one model"
            raise ValueError(msg)

    def choose(self, present: set[Sequence]) -> tuple[ModelEntry | None, dict[str, str]]:
        """The entry to run and, for each entry passed over, why."""
        passed: dict[str, str] = {}
        for entry in self.entries:
            ok, why = can_run(entry, present)
            if ok:
                return entry, passed
            passed[entry.name] = why
        return None, passed

    def segmenter(self, entry: ModelEntry, *, exam: str | None = None) -> Segmenter:
        with self._lock:
            if entry.name not in self._loaded:
                try:
                    self._loaded[entry.name] = self.loader(entry, self.settings)
                except ConfigError as exc:
                    self._loaded[entry.name] = exc
        loaded = self._loaded[entry.name]
        if isinstance(loaded, ConfigError):
            msg = f"Segmentation model {entry.name} cannot be used: {loaded.message}"
            raise SegmentationError(msg, exam=exam, action=loaded.action or "Fix the model entry (gliowatch models check "
                                    f"{entry.name}).", detail=loaded.detail)
        return loaded

    def segment(self, volumes: Mapping[Sequence, Volume], *, exam: str | None = None) -> SegmentationResult:
        present = set(volumes)
        entry, passed = self.choose(present)
        if entry is None:
            reasons = "; ".join(f"{name} {why}" for name, why in passed.items())
            msg = f"No configured segmentation model can run on the sequences present ({_names(present)}): {reasons}"
            raise SegmentationError(msg, exam=exam, action="Configure a model for these sequences or add the series.")
        result = self.segmenter(entry, exam=exam).segment(volumes, exam=exam)
        metadata = {**result.labels.metadata, "registry_model": entry.name}
        flags = result.flags
        if passed:
            metadata["passed_over"] = dict(passed)
            flags = (f"{REDUCED_INPUT}:{entry.name}", *flags)
        labels = dataclasses.replace(result.labels, metadata=metadata)
        return dataclasses.replace(result, labels=labels, flags=flags)


def _sequence(name: str, *, model: str) -> Sequence:
    for seq in Sequence:
        if name.strip().lower() in {seq.value.lower(), seq.name.lower()}:
            return seq
    msg = f"Segmentation model {model}: unknown sequence {name!r} in 'sequences'"
    raise ConfigError(msg, action=f"Use {', '.join(s.value for s in Sequence)}.")


def _folder_kind(path: str) -> str:
    from engine.segmentation.loading import resolve_model_dir
    from engine.segmentation.anomaly import is_anomaly_model

    return "anomaly" if path and is_anomaly_model(resolve_model_dir(path)) else "builtin"


def _names(present: set[Sequence]) -> str:
    return ", ".join(sorted(str(s) for s in present)) or "none"


__all__ = ["ModelChooser", "build_segmenter", "can_run", "find_entry", "implicit_entries", "registry_entries",
           "required_sequences"]
