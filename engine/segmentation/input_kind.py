"""What kind of input a study is, and which segmenter it goes to.

Research data (BraTS, TCGA as the BraTS tools prepare it) are **skull-stripped**: everything but
the brain is set to one constant, so the image's foreground is the brain. Clinical DICOM shows
the whole head with a noisy background. The built-in network was made on whole heads; a
skull-stripped study goes to the segmenter configured for it (``segmentation.stripped_model_dir``,
by default ``gliowatch-anomaly``), and the result carries the flag ``input:skull_stripped``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.segmentation.result import SegmentationResult, Segmenter
from engine.types import Sequence, Volume

#: a foreground (not the background constant) within these volumes (mL) can be a brain alone.
BRAIN_ML = (700.0, 2200.0)
#: ... and no longer than this from front to back (a brain is about 160-180 mm; a head 190-230).
MAX_BRAIN_LENGTH_MM = 195.0
#: at least this share of the grid holds exactly the background constant.
MIN_BACKGROUND_FRACTION = 0.25
FLAG = "input:skull_stripped"
_ORDER = (Sequence.T1C, Sequence.T1, Sequence.FLAIR, Sequence.T2)


def skull_stripped(volume: Volume) -> bool:
    """Whether ``volume`` looks skull-stripped: one constant (that of the grid's corners) over
    much of the grid around a foreground the size and length of a brain.

    >>> brain = np.zeros((100, 110, 90), np.float32); brain[20:80, 15:95, 20:70] = 1.0
    >>> skull_stripped(Volume(brain, np.diag([2.0, 2.0, 2.0, 1.0])))
    True
    >>> noisy = brain + np.random.default_rng(0).random(brain.shape, dtype=np.float32) * 0.01
    >>> skull_stripped(Volume(noisy, np.diag([2.0, 2.0, 2.0, 1.0])))
    False
    """
    array = np.asarray(volume.array)
    corners = array[np.ix_(*[[0, n - 1] for n in array.shape])]
    if not np.all(corners == corners.flat[0]):
        return False  # a noisy or cut-off background: not one constant
    background = array == corners.flat[0]
    if background.mean() < MIN_BACKGROUND_FRACTION:
        return False
    foreground_ml = float((~background).sum()) * volume.voxel_ml
    if not BRAIN_ML[0] <= foreground_ml <= BRAIN_ML[1]:
        return False
    index = np.argwhere(~background)
    ends = np.array([[*index.min(0), 1.0], [*index.max(0), 1.0]])
    ras = (volume.affine @ ends.T).T
    # the extent along the world axis closest to anterior-posterior (RAS y)
    return bool(abs(ras[1, 1] - ras[0, 1]) + _voxel_along_y(volume) <= MAX_BRAIN_LENGTH_MM)


def _voxel_along_y(volume: Volume) -> float:
    return float(np.abs(volume.affine[1, :3]).max())


def reference_volume(volumes: Mapping[Sequence, Volume]) -> Volume | None:
    """The volume the decision is taken on: T1c, else T1, FLAIR, T2."""
    return next((volumes[s] for s in _ORDER if s in volumes), None)


@dataclass(frozen=True, slots=True)
class InputRouter:
    """:class:`Segmenter` that sends skull-stripped studies to ``skull_stripped_segmenter`` and
    every other study to ``whole_head``."""

    whole_head: Segmenter
    skull_stripped_segmenter: Segmenter

    def segment(self, volumes: Mapping[Sequence, Volume], *, exam: str | None = None) -> SegmentationResult:
        reference = reference_volume(volumes)
        if reference is None or not skull_stripped(reference):
            return self.whole_head.segment(volumes, exam=exam)
        result = self.skull_stripped_segmenter.segment(volumes, exam=exam)
        return dataclasses.replace(result, flags=(FLAG, *result.flags))
