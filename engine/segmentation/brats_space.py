"""Run a model trained in BraTS space (skull-stripped, co-registered, SRI24 atlas at 1 mm) on a
native study, and bring its labels back to the study's native T1c grid.

The preparation itself (co-registration, atlas registration, skull stripping, the way back) is
:mod:`engine.segmentation.space`. The atlas is the site's file (``segmentation.atlas_path``: no
package ships SRI24), so a model declaring ``space = "brats-sri24"`` without one is refused when
it is loaded, with a :class:`~engine.errors.ConfigError`. Volumes are measured on the native grid,
never in atlas space.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from engine.errors import ConfigError, SegmentationError
from engine.segmentation.model_config import canonical_sha256
from engine.segmentation.result import SegmentationResult, Segmenter
from engine.segmentation.sanity import label_volumes_ml
from engine.types import Sequence, Volume

SPACE = "brats-sri24"


class BratsSpaceSegmenter:
    """:class:`Segmenter` that runs ``inner`` on the study prepared in BraTS space. ``atlas``: the
    SRI24 T1 (a NIfTI path, or a volume); ``brain_masker``: volume -> brain mask for whole-head
    studies (default: HD-BET, :mod:`engine.segmentation.brain_extraction`)."""

    def __init__(self, inner: Segmenter, *, model: str, atlas: str | Path | Volume,
                 brain_masker=None) -> None:  # noqa: ANN001 - engine.segmentation.space.BrainMasker
        from engine.segmentation import space

        if isinstance(atlas, str | Path) and not str(atlas):
            raise ConfigError(f"Model {model} declares space {SPACE!r}, but no SRI24 atlas is configured",
                              action="Set segmentation.atlas_path to a skull-stripped SRI24 T1 NIfTI "
                                     "(240 x 240 x 155, 1 mm), or set space = 'native'.")
        try:
            self.atlas = atlas if isinstance(atlas, Volume) else space.load_atlas(atlas)
        except SegmentationError as exc:
            raise ConfigError(f"Model {model}: {exc.reason}", action=exc.action) from exc
        self.inner = inner
        self.model = model
        self.brain_masker = brain_masker
        self.space = space

    def segment(self, volumes: Mapping[Sequence, Volume], *, exam: str | None = None) -> SegmentationResult:
        start = time.perf_counter()
        if Sequence.T1C not in volumes:
            msg = f"Model {self.model} works in BraTS space, which is mapped back to the T1c grid; the study has no T1c"
            raise SegmentationError(msg, exam=exam, action="Configure a native-space model for studies without T1c.")
        prepared = self.space.prepare_brats_space(volumes, atlas=self.atlas, brain_masker=self.brain_masker, exam=exam)
        atlas = self.inner.segment(prepared.volumes, exam=exam)
        native = prepared.labels_to_native(np.asarray(atlas.labels.array, dtype=np.uint8))
        labels = np.asarray(native.array).astype(np.uint8)
        config_sha = canonical_sha256({"model": atlas.config_sha256, "space": SPACE})
        metadata = {**atlas.labels.metadata, "space": SPACE, "config_sha256": config_sha,
                    "reference_sequence": str(Sequence.T1C)}
        return dataclasses.replace(
            atlas, labels=Volume(labels, np.asarray(native.affine).copy(), metadata),
            volumes_ml=label_volumes_ml(labels, voxel_ml=native.voxel_ml), config_sha256=config_sha,
            elapsed_s=time.perf_counter() - start,
        )


__all__ = ["BratsSpaceSegmenter"]
