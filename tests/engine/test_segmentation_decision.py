"""The weighted argmax and its calibration (engine.segmentation.decision)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.segmentation import resolve_model_dir
from engine.modelling.calibration import CalibrationCase, calibrate, case_metrics, compact_case
from engine.segmentation.decision import channel_weights, decide, label_lut
from engine.segmentation.inference import softmax_decoder
from engine.segmentation.model_config import load_model_config, model_config_from_dict
from engine.errors import ConfigError
from engine.types import Label
from test_segmentation_phantom import tiny_config

OUTPUTS = {1: Label.NETC, 2: Label.SNFH, 3: Label.ET, 4: Label.RC}


def thin_rim_case(*, et_fraction: float = 0.35) -> CalibrationCase:
    """A block of SNFH with a one-voxel ET rim whose class fraction is ``et_fraction``.

    At the rim SNFH holds the rest of the probability, so the plain argmax gives SNFH there.
    """
    shape = (12, 12, 12)
    truth = np.zeros(shape, np.uint8)
    truth[2:10, 2:10, 2:10] = int(Label.SNFH)
    truth[2:10, 2:10, 2] = int(Label.ET)
    probs = np.zeros((5,) + shape, np.float32)
    probs[0] = 1.0
    block = truth > 0
    probs[0][block] = 0.05
    probs[2][block] = 0.95
    rim = truth == int(Label.ET)
    probs[3][rim] = et_fraction
    probs[2][rim] = 1.0 - et_fraction - 0.05
    true_ml = {"ET": float(rim.sum()) * 0.01, "SNFH": float((truth == 2).sum()) * 0.01, "NETC": 0.0, "RC": 0.0}
    return CalibrationCase(study="rim", probabilities=probs.astype(np.float16), truth=truth,
                           truth_outside={}, voxel_ml=0.01, true_ml=true_ml)


def test_unit_weights_are_the_plain_argmax_of_the_old_decoder():
    rng = np.random.default_rng(0)
    probs = torch.from_numpy(rng.dirichlet(np.ones(5), size=(6, 7, 8)).transpose(3, 0, 1, 2).astype(np.float32))
    probs[:, 0, 0, 0] = 0.0  # outside the working grid: background
    labels = softmax_decoder(OUTPUTS)(probs)
    expected = np.array([0, 1, 2, 3, 4], np.uint8)[probs.numpy().argmax(0)]
    expected[0, 0, 0] = 0
    assert np.array_equal(labels, expected)


def test_a_weight_turns_a_minority_class_into_the_label_only_where_it_wins_the_weighted_vote():
    probs = np.array([[0.1, 0.1, 0.1], [0.0, 0.0, 0.0], [0.6, 0.5, 0.8], [0.3, 0.4, 0.1]], np.float32)[:, :, None, None]
    lut = label_lut({1: Label.NETC, 2: Label.SNFH, 3: Label.ET}, 4)
    plain = decide(probs, weights=np.ones(4, np.float32), lut=lut).ravel().tolist()
    weighted = decide(probs, weights=channel_weights({1: Label.NETC, 2: Label.SNFH, 3: Label.ET}, {Label.ET: 1.5}),
                      lut=lut).ravel().tolist()
    assert plain == [2, 2, 2]
    assert weighted == [2, 3, 2]  # 0.45 < 0.6, 0.6 > 0.5, 0.15 < 0.8


def test_calibration_raises_the_et_weight_for_a_thin_rim_and_improves_its_dice():
    case = thin_rim_case(et_fraction=0.35)
    cw, lut = channel_weights(OUTPUTS, {}), label_lut(OUTPUTS, 5)
    before = case_metrics(case, weights=cw, lut=lut)
    assert before["dice_ET"] == 0.0
    result = calibrate([case], OUTPUTS, grid=(1.0, 2.0))
    assert result.weights[Label.ET] == 2.0
    assert result.summary["dice_ET"] == pytest.approx(1.0)
    assert result.baseline["dice_ET"] == 0.0
    assert result.summary["volerr_ET"] == pytest.approx(0.0)


def test_calibration_keeps_unit_weights_when_they_cannot_be_beaten():
    case = thin_rim_case(et_fraction=0.8)  # the plain argmax is already right
    result = calibrate([case], OUTPUTS, grid=(0.75, 1.0, 1.25))
    assert result.weights == {Label.NETC: 1.0, Label.SNFH: 1.0, Label.ET: 1.0}


def test_truth_outside_the_kept_box_counts_as_missed():
    case = thin_rim_case(et_fraction=0.8)
    cw, lut = channel_weights(OUTPUTS, {}), label_lut(OUTPUTS, 5)
    inside_only = case_metrics(case, weights=cw, lut=lut)["dice_ET"]
    n = int((case.truth == 3).sum())
    missed = CalibrationCase(study="x", probabilities=case.probabilities, truth=case.truth,
                             truth_outside={"ET": n, "TC": n, "WT": n}, voxel_ml=case.voxel_ml, true_ml=case.true_ml)
    assert inside_only == pytest.approx(1.0)
    assert case_metrics(missed, weights=cw, lut=lut)["dice_ET"] == pytest.approx(2 * n / (n + 2 * n))


def test_decision_weights_round_trip_through_config_json(tmp_path):
    data = {**tiny_config("calibrated", spacing_mm=2.0), "decision_weights": {"ET": 2.5, "NETC": 1.25},
            "calibration": {"seed": 515151}}
    (tmp_path / "config.json").write_text(json.dumps(data))
    config = load_model_config(tmp_path)
    assert config.decision_weights == {Label.ET: 2.5, Label.NETC: 1.25}
    again = model_config_from_dict(config.to_json())
    assert again.decision_weights == config.decision_weights
    assert again.calibration == {"seed": 515151}
    with pytest.raises(ConfigError):
        model_config_from_dict({**data, "decision_weights": {"ET": 0.0}})
    with pytest.raises(ConfigError):
        model_config_from_dict({**data, "decision_weights": {"XX": 1.0}})


def test_the_shipped_config_names_only_known_labels_with_sane_weights():
    config = load_model_config(resolve_model_dir("models/gliowatch-unet"))
    assert set(config.decision_weights) <= {Label.NETC, Label.SNFH, Label.ET, Label.RC}
    assert all(0.0 < w < 19.0 for w in config.decision_weights.values())


def test_compacting_a_case_keeps_every_metric_for_any_weight_below_19():
    rim = thin_rim_case(et_fraction=0.35)
    probs = rim.probabilities.astype(np.float32)
    probs[0, 10:] = 0.96  # a near-certain background layer with some ET probability
    probs[3, 10:] = 0.04
    case = CalibrationCase(study="rim", probabilities=probs, truth=rim.truth, truth_outside={},
                           voxel_ml=rim.voxel_ml, true_ml=rim.true_ml)
    small = compact_case(case)
    assert small.truth.size < case.truth.size
    for et_weight in (1.0, 2.0, 18.0):
        cw, lut = channel_weights(OUTPUTS, {Label.ET: et_weight, Label.NETC: 18.0}), label_lut(OUTPUTS, 5)
        assert case_metrics(small, weights=cw, lut=lut) == case_metrics(case, weights=cw, lut=lut)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_decide_is_the_weighted_argmax_with_the_first_maximum_winning_ties(dtype):
    rng = np.random.default_rng(3)
    probs = rng.random((5, 20, 18, 16)).astype(np.float32)
    probs /= probs.sum(0)
    probs[:, :3] = 0.0  # outside the working grid: background
    probs[:, 3:8] = np.round(probs[:, 3:8] * 4) / 4  # many exact ties
    probs = probs.astype(dtype)
    before = probs.copy()
    lut = np.array([0, 1, 2, 3, 4], np.uint8)
    weights = np.array([1.0, 3.0, 2.0, 2.5, 1.0], np.float32)
    scored = probs.astype(np.float32)
    scored[0] = np.maximum(scored[0], 1.0 - scored.sum(0))
    for w in (np.ones(5, np.float32), weights):
        expected = lut[(scored * w[:, None, None, None]).argmax(0)]  # numpy: the first maximum wins
        assert np.array_equal(decide(probs, weights=w, lut=lut), expected)
    assert np.array_equal(probs, before)  # the input is left as it was
    read_only = probs.copy()
    read_only.flags.writeable = False  # as from a memory-mapped cache
    assert np.array_equal(decide(read_only, weights=weights, lut=lut), decide(probs, weights=weights, lut=lut))
    flipped = probs[:, ::-1]  # negative strides
    assert np.array_equal(decide(flipped, weights=weights, lut=lut), decide(probs, weights=weights, lut=lut)[::-1])
