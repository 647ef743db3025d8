"""Run a model trained in BraTS space (skull-stripped, co-registered, SRI24 atlas at 1 mm) on a
native study, and bring its labels back to the study's native T1c grid.

The preparation itself (co-registration, atlas registration, skull stripping, the way back) is
:mod:`engine.segmentation.space`, imported when a model declaring ``space = "brats-sri24"`` is
loaded; without that module such a model is refused with a :class:`~engine.errors.ConfigError`.
Volumes are measured on the native grid, never in atlas space.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Mapping
from types import ModuleType

import numpy as np

from engine.errors import ConfigError, SegmentationError
from engine.segmentation.model_config import canonical_sha256
from engine.segmentation.result import SegmentationResult, Segmenter
from engine.segmentation.sanity import label_volumes_ml
from engine.types import Sequence, Volume

SPACE = "brats-sri24"
SPACE_MODULE = "engine.segmentation.space"


def space_module(*, model: str) -> ModuleType:
    """:mod:`engine.segmentation.space`, or a ``ConfigError`` naming the model when it is absent."""
    try:
        return importlib.import_module(SPACE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != SPACE_MODULE:  # the module is there, a package it needs is not
            raise ConfigError(f"Model {model} declares space {SPACE!r}, but BraTS-space preprocessing "
                              f"cannot be imported: {exc}", detail=repr(exc)) from exc
        msg = f"Model {model} declares space {SPACE!r}, but this installation has no BraTS-space preprocessing ({SPACE_MODULE})"
        raise ConfigError(msg, action="Install a GlioWatch version with engine/segmentation/space.py or set space = 'native'.") from exc


class BratsSpaceSegmenter:
    """:class:`Segmenter` that runs ``inner`` on the study prepared in BraTS space."""

    def __init__(self, inner: Segmenter, *, model: str) -> None:
        self.inner = inner
        self.model = model
        self.space = space_module(model=model)

    def segment(self, volumes: Mapping[Sequence, Volume], *, exam: str | None = None) -> SegmentationResult:
        start = time.perf_counter()
        if Sequence.T1C not in volumes:
            msg = f"Model {self.model} works in BraTS space, which is mapped back to the T1c grid; the study has no T1c"
            raise SegmentationError(msg, exam=exam, action="Configure a native-space model for studies without T1c.")
        prepared = self.space.prepare_brats_space(volumes)
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


__all__ = ["BratsSpaceSegmenter", "space_module"]
