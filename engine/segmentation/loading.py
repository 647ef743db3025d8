"""One model folder (or the configured MONAI bundle) as a segmenter; where model folders are.

Re-exported by :mod:`engine.segmentation`; a module of its own so the registry
(:mod:`engine.segmentation.registry`) can build models without importing the package it is part of.
"""

from __future__ import annotations

from pathlib import Path

from engine.segmentation.result import Segmenter
from engine.settings import PROJECT_ROOT, SegmentationSettings


def resolve_model_dir(path: str | Path) -> Path:
    """A model folder; relative paths are relative to the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def load_model(settings: SegmentationSettings, model_dir: str, *, bundle: bool = True,
               brain_extraction: bool = False) -> Segmenter:
    """One model folder as a segmenter: an anomaly model (``"method": "anomaly"`` in its config;
    with HD-BET brain extraction for whole-head input when ``brain_extraction``), else the network
    it describes; or the MONAI bundle of ``settings.bundle_dir`` (``bundle``)."""
    if bundle and settings.bundle_dir:
        from engine.segmentation.bundle import BundleSegmenter

        return BundleSegmenter(
            bundle_dir=resolve_model_dir(settings.bundle_dir),
            labels=settings.bundle_labels,
            device=settings.device,
            align_sequences=settings.align_sequences,
        )
    from engine.segmentation.anomaly import AnomalySegmenter, is_anomaly_model, load_anomaly_parameters
    from engine.segmentation.inference import MonaiSegmenter
    from engine.segmentation.model_config import load_model_config
    from engine.segmentation.network import load_network

    folder = resolve_model_dir(model_dir)
    if is_anomaly_model(folder):
        extractor = None
        if brain_extraction:
            from engine.segmentation.brain_extraction import BrainExtractor

            extractor = BrainExtractor(mode=settings.brain_extraction_mode, device=settings.device)
        return AnomalySegmenter(parameters=load_anomaly_parameters(folder), align_sequences=settings.align_sequences,
                                brain_extractor=extractor)
    if brain_extraction:
        from engine.errors import ConfigError

        raise ConfigError(f"Brain extraction is implemented for anomaly models only; {folder} is a network",
                          action="Set segmentation.stripped_model_dir to models/gliowatch-anomaly.")
    config = load_model_config(folder)
    net, sha = load_network(config)
    return MonaiSegmenter(config=config, net=net, weights_sha256=sha, device=settings.device,
                          align_sequences=settings.align_sequences)
