"""Tumour sub-region segmentation (NETC, SNFH, ET, RC) with MONAI networks.

Public API::

    load_segmenter(settings.segmentation) -> Segmenter
    Segmenter.segment(volumes: Mapping[Sequence, Volume], *, exam=None) -> SegmentationResult

torch and MONAI are imported only when a segmenter is built or run.
"""

from __future__ import annotations

from pathlib import Path

from engine.segmentation.result import SegmentationResult, Segmenter
from engine.settings import PROJECT_ROOT, SegmentationSettings


def resolve_model_dir(path: str | Path) -> Path:
    """A model folder; relative paths are relative to the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def load_segmenter(settings: SegmentationSettings) -> Segmenter:
    """The shipped model, or the user's MONAI bundle when ``settings.bundle_dir`` is set."""
    if settings.bundle_dir:
        from engine.segmentation.bundle import BundleSegmenter

        return BundleSegmenter(
            bundle_dir=resolve_model_dir(settings.bundle_dir),
            labels=settings.bundle_labels,
            device=settings.device,
            align_sequences=settings.align_sequences,
        )
    from engine.segmentation.inference import MonaiSegmenter
    from engine.segmentation.model_config import load_model_config
    from engine.segmentation.network import load_network

    config = load_model_config(resolve_model_dir(settings.model_dir))
    net, sha = load_network(config)
    return MonaiSegmenter(config=config, net=net, weights_sha256=sha, device=settings.device,
                          align_sequences=settings.align_sequences)


__all__ = ["SegmentationResult", "Segmenter", "load_segmenter", "resolve_model_dir"]
