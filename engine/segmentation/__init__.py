"""Tumour sub-region segmentation (NETC, SNFH, ET, RC) with MONAI networks.

Public API::

    load_segmenter(settings.segmentation) -> Segmenter
    Segmenter.segment(volumes: Mapping[Sequence, Volume], *, exam=None) -> SegmentationResult

torch and MONAI are imported only when a segmenter is built or run.
"""

from __future__ import annotations

from engine.errors import ConfigError
from engine.segmentation.loading import load_model, resolve_model_dir
from engine.segmentation.result import SegmentationResult, Segmenter
from engine.settings import SegmentationSettings


def segmentation_on_gpu(settings: SegmentationSettings, *, cuda_available: bool | None = None) -> bool:
    """Whether the configured segmenter runs on CUDA: ``cuda[:n]``, or ``auto`` with CUDA present
    (as :func:`engine.segmentation.inference.select_device` decides; ``engine.registration`` has
    the same question as ``registration_on_gpu``)."""
    device = settings.device.strip().lower()
    if device.startswith("cuda"):
        return True
    if device != "auto":
        return False
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    return bool(cuda_available)


def load_segmenter(settings: SegmentationSettings) -> Segmenter:
    """The configured segmenter: the shipped model (or the user's MONAI bundle when
    ``settings.bundle_dir`` is set) for whole-head studies and, when ``settings.stripped_model_dir``
    is set, that model for skull-stripped ones (:class:`engine.segmentation.input_kind.InputRouter`).

    With ``[[segmentation.models]]`` entries, whole-head studies go to a
    :class:`engine.segmentation.registry.ModelChooser` over those entries and, last, the model
    above; with ``settings.model`` set, to that one registry model alone (loaded on first use).
    With ``settings.brain_extraction = "hd-bet"`` (and no registry entries) whole-head studies go to
    the stripped model too, after HD-BET brain extraction."""
    if settings.brain_extraction not in ("none", "hd-bet"):
        raise ConfigError(f"segmentation.brain_extraction must be 'none' or 'hd-bet', got {settings.brain_extraction!r}")
    if settings.models or settings.model:
        from engine.segmentation.registry import ModelChooser, find_entry, registry_entries

        every = registry_entries(settings)  # refuses a configured entry named like an implicit one
        entries = (find_entry(settings, settings.model),) if settings.model else every[: len(settings.models) + 1]
        main: Segmenter = ModelChooser(entries=entries, settings=settings)
        if settings.model:
            return main
    elif settings.brain_extraction == "hd-bet" and settings.stripped_model_dir:
        main = load_model(settings, settings.stripped_model_dir, bundle=False, brain_extraction=True)
    else:
        main = load_model(settings, settings.model_dir)
    if not settings.stripped_model_dir:  # one model for every study (brain_extraction does not apply)
        return main
    from engine.segmentation.input_kind import InputRouter

    return InputRouter(whole_head=main, skull_stripped_segmenter=load_model(settings, settings.stripped_model_dir,
                                                                            bundle=False))


__all__ = ["SegmentationResult", "Segmenter", "load_model", "load_segmenter", "resolve_model_dir",
           "segmentation_on_gpu"]
