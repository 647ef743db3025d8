"""Whole-head studies through brain extraction and gliowatch-anomaly (segmentation.brain_extraction).

HD-BET itself is tested on real scans in test_brain_extraction.py; here the brain mask comes from
an extractor that knows the synthetic brain, so what is checked is the route: the mask brought
onto the working grid, the rules confined to it, the flag, the provenance and the settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.segmentation import load_segmenter
from engine.segmentation.anomaly import BRAIN_FLAG, AnomalySegmenter
from engine.segmentation.brain_extraction import BrainExtractor
from engine.segmentation.input_kind import FLAG, InputRouter, skull_stripped
from engine.settings import SegmentationSettings
from engine.types import Label, Sequence, Volume
from tests.engine.test_segmentation_anomaly import stripped_brain
from tests.support import dice


def whole_head() -> tuple[dict[Sequence, Volume], np.ndarray, np.ndarray]:
    """The stripped brain with a scalp around it (bright on every sequence, as fat is on T1 and
    FLAIR) and a noisy background: (volumes, true labels, brain)."""
    volumes, truth = stripped_brain()
    brain = volumes[Sequence.T1].array > 0
    from scipy import ndimage

    scalp = ndimage.binary_dilation(brain, iterations=6) & ~ndimage.binary_dilation(brain, iterations=3)
    rng = np.random.default_rng(5)
    head = {}
    for seq, vol in volumes.items():
        array = vol.array.copy()
        array[scalp] = 160.0 + rng.normal(0, 3, int(scalp.sum()))
        array += np.abs(rng.normal(0, 2, array.shape)).astype(np.float32)
        head[seq] = Volume(array.astype(np.float32), vol.affine)
    return head, truth, brain


@dataclass(frozen=True)
class KnownBrain:
    """A brain extractor that returns the synthetic brain (the role HD-BET has on real scans)."""

    brain: np.ndarray
    identity: str = "known-brain"

    def mask(self, volume: Volume, *, exam: str | None = None) -> Volume:
        return Volume(self.brain, volume.affine, {"brain_ml": float(self.brain.sum()) * volume.voxel_ml})


def test_a_whole_head_is_segmented_inside_the_extracted_brain() -> None:
    head, truth, brain = whole_head()
    assert not skull_stripped(head[Sequence.T1C])
    result = AnomalySegmenter(brain_extractor=KnownBrain(brain)).segment(head)
    labels = result.labels.array
    assert result.flags[0] == BRAIN_FLAG
    assert dice(labels > 0, truth > 0) > 0.85
    assert dice(labels == Label.ET, truth == Label.ET) > 0.6
    assert not (labels[~brain] > 0).any()  # nothing in the scalp
    assert result.config_sha256 != AnomalySegmenter().config_sha256  # provenance names the extractor


def test_the_setting_sends_whole_head_studies_through_hd_bet_and_keeps_stripped_ones() -> None:
    routed = load_segmenter(SegmentationSettings(device="cpu", brain_extraction="hd-bet"))
    assert isinstance(routed, InputRouter)
    assert isinstance(routed.whole_head, AnomalySegmenter)
    assert routed.whole_head.brain_extractor == BrainExtractor(mode="fast", device="cpu")
    assert isinstance(routed.skull_stripped_segmenter, AnomalySegmenter)
    assert routed.skull_stripped_segmenter.brain_extractor is None
    volumes, _ = stripped_brain()
    assert routed.segment(volumes).flags[0] == FLAG  # a stripped study never runs HD-BET


def test_a_bad_brain_extraction_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="brain_extraction"):
        load_segmenter(SegmentationSettings(device="cpu", brain_extraction="bet2"))
    with pytest.raises(ConfigError, match="anomaly models only"):
        load_segmenter(SegmentationSettings(device="cpu", brain_extraction="hd-bet",
                                            stripped_model_dir="models/gliowatch-unet"))
