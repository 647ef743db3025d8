"""Evaluation metrics: the doctests, and the disagreement count against Dice and the truth."""

from __future__ import annotations

import doctest

import numpy as np

import engine.modelling.evaluation.metrics as metrics
from engine.modelling.evaluation.metrics import REGIONS, disagreement, region_dice


def test_metrics_doctests() -> None:
    failures, tried = doctest.testmod(metrics, raise_on_error=False, verbose=False)[:2]
    assert tried > 0 and failures == 0


def test_disagreement_splits_every_differing_voxel_between_the_two_outputs() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 5, size=(12, 10, 8))
    ours = np.where(rng.random(truth.shape) < 0.8, truth, rng.integers(0, 5, size=truth.shape))
    other = np.where(rng.random(truth.shape) < 0.6, truth, rng.integers(0, 5, size=truth.shape))
    counts = disagreement(ours, other, truth)
    agreement = region_dice(ours, other)
    for name, labels in REGIONS.items():
        values = [int(v) for v in labels]
        a, b, t = (np.isin(x, values) for x in (ours, other, truth))
        assert counts[name]["voxels"] == int((a != b).sum()) > 0
        # where two masks differ exactly one matches the truth: the other's share is the rest
        assert counts[name]["voxels"] - counts[name]["ours_right"] == int(((a != b) & (b == t)).sum())
        assert agreement[name] < 1.0
        # the output that is right more often here is the closer one
        assert counts[name]["ours_right"] > counts[name]["voxels"] / 2
    assert disagreement(ours, ours, truth)["TC"] == {"voxels": 0, "ours_right": 0}
