"""Rigid realignment of a study's sequences when the patient moved between them (synthetic head,
series on their own scanner grids, one sequence's geometry made wrong by a known motion)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_segmentation_phantom import tiny_config

from engine.registration.geometry import rotation_angle_deg
from engine.segmentation import load_segmenter
from engine.segmentation.alignment import align_one, align_sequences
from engine.segmentation.model_config import model_config_from_dict
from engine.segmentation.network import build_network, save_weights_fp16
from engine.settings import SegmentationSettings
from engine.modelling.synth import sample_acquired_case
from engine.types import Sequence, Volume


def _motion(deg: float, shift_mm: tuple[float, float, float], centre: np.ndarray) -> np.ndarray:
    """A rigid motion (rotation about z through ``centre``, then a shift), RAS mm."""
    a = np.radians(deg)
    m = np.eye(4)
    m[:3, :3] = [[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]]
    m[:3, 3] = centre - m[:3, :3] @ centre + np.asarray(shift_mm)
    return m


def _centre(volume: Volume) -> np.ndarray:
    return (volume.affine @ np.append((np.array(volume.array.shape) - 1) / 2.0, 1.0))[:3]


@pytest.fixture(scope="module")
def study() -> dict[Sequence, Volume]:
    """A 2 mm synthetic head acquired as four series (3D and 2D, own grids, one head pose)."""
    return sample_acquired_case(7, spacing_mm=2.0).volumes


def _head_points(volume: Volume) -> np.ndarray:
    """World points of the bright (head) voxels of ``volume``, subsampled (4, N)."""
    idx = np.argwhere(volume.array > 0.2 * np.percentile(volume.array, 99))[::50]
    return volume.affine @ np.c_[idx, np.ones(len(idx))].T


def test_a_moved_sequence_is_realigned_onto_the_reference(study) -> None:
    flair = study[Sequence.FLAIR]
    # the patient turned 3 degrees and moved 4 mm before the FLAIR: the image is where the head
    # was, but its geometry says otherwise. Recovering means undoing the motion.
    motion = _motion(3.0, (3.0, -2.0, 2.0), _centre(study[Sequence.T1C]))
    moved = Volume(flair.array, motion @ flair.affine)
    corrected, decision = align_one(study[Sequence.T1C], moved, Sequence.FLAIR)
    assert decision.applied, decision.reason
    assert decision.flag == "realigned:FLAIR"
    assert decision.similarity_after > decision.similarity_before
    assert decision.motion_mm > 4.0 and abs(decision.rotation_deg - 3.0) < 1.0
    points = _head_points(flair)  # voxel centres: where are they said to be, against the truth
    error = np.linalg.norm((corrected.affine @ np.linalg.inv(flair.affine) @ points - points)[:3], axis=0)
    before = np.linalg.norm((moved.affine @ np.linalg.inv(flair.affine) @ points - points)[:3], axis=0)
    assert np.median(before) > 4.0
    assert np.percentile(error, 95) < 1.5, np.percentile(error, [50, 95])
    assert rotation_angle_deg(corrected.affine @ np.linalg.inv(flair.affine)) < 0.5


def test_sequences_already_in_place_keep_their_dicom_geometry(study) -> None:
    out, decisions = align_sequences(study, reference=Sequence.T1C)
    assert {d.sequence for d in decisions} == {Sequence.T1, Sequence.T2, Sequence.FLAIR}
    for decision in decisions:
        assert not decision.applied, decision.reason
        assert decision.reason.startswith("kept the DICOM geometry")
        np.testing.assert_array_equal(out[decision.sequence].affine, study[decision.sequence].affine)


def test_segmentation_flags_a_realigned_sequence_and_can_be_turned_off(study, tmp_path) -> None:
    config = model_config_from_dict(tiny_config("tiny-align", spacing_mm=4.0), model_dir=tmp_path)
    torch.manual_seed(0)
    save_weights_fp16(build_network(config), tmp_path / "model.pt")
    (tmp_path / "config.json").write_text(json.dumps(config.to_json()))
    volumes = dict(study)
    flair = volumes[Sequence.FLAIR]
    volumes[Sequence.FLAIR] = Volume(flair.array, _motion(4.0, (4.0, 3.0, 0.0), _centre(study[Sequence.T1C])) @ flair.affine)
    on = load_segmenter(SegmentationSettings(model_dir=str(tmp_path), device="cpu"))
    result = on.segment(volumes)
    assert "realigned:FLAIR" in result.flags
    assert result.labels.metadata["alignment"]["FLAIR"].startswith("realigned onto the reference: motion ")
    off = load_segmenter(SegmentationSettings(model_dir=str(tmp_path), device="cpu", align_sequences=False))
    assert not any(f.startswith("realigned:") for f in off.segment(volumes).flags)
