"""engine.seeds: which synthetic seeds training, calibration and held-out evaluation may use."""

from __future__ import annotations

import doctest
import re

import pytest

import engine.seeds
from engine.seeds import (
    ACQUIRED_SEED_BASE,
    CALIBRATION_SEED,
    EVAL_SEED,
    SEED_BLOCK,
    TRAIN_SEED_BASE,
    check_seed_for,
    seed_use,
)


def test_training_blocks_and_the_calibration_seed_are_reserved() -> None:
    assert seed_use(TRAIN_SEED_BASE) == "training (sample_training_case, seeds 100000-199999)"
    assert seed_use(ACQUIRED_SEED_BASE + SEED_BLOCK - 1) == "training (sample_acquired_case, seeds 200000-299999)"
    assert seed_use(TRAIN_SEED_BASE - 1) is None and seed_use(ACQUIRED_SEED_BASE + SEED_BLOCK) is None
    assert seed_use(CALIBRATION_SEED).startswith("calibration")
    assert seed_use(EVAL_SEED) is None
    # the blocks do not overlap each other or the two cohort seeds
    assert TRAIN_SEED_BASE + SEED_BLOCK <= ACQUIRED_SEED_BASE
    assert all(not base <= s < base + SEED_BLOCK for s in (CALIBRATION_SEED, EVAL_SEED)
               for base in (TRAIN_SEED_BASE, ACQUIRED_SEED_BASE))


@pytest.mark.parametrize(("seed", "purpose", "reason"), [
    (200_063, "evaluation", "training (sample_acquired_case"),
    (CALIBRATION_SEED, "evaluation", "calibration"),
    (150_000, "calibration", "training (sample_training_case"),
    (EVAL_SEED, "calibration", "held-out evaluation"),
])
def test_a_reserved_seed_is_refused_with_its_use(seed: int, purpose: str, reason: str) -> None:
    with pytest.raises(ValueError, match=rf"seed {seed} is reserved for {re.escape(reason)}.*; {purpose} needs a seed of its own"):
        check_seed_for(seed, purpose=purpose)


def test_free_seeds_pass() -> None:
    check_seed_for(EVAL_SEED, purpose="evaluation")
    check_seed_for(CALIBRATION_SEED, purpose="calibration")
    for seed in (0, 7, 99_999, 300_000, 616_161):
        check_seed_for(seed, purpose="evaluation")
        check_seed_for(seed, purpose="calibration")
    with pytest.raises(ValueError, match="purpose must be"):
        check_seed_for(7, purpose="training")


def test_doctests() -> None:
    assert doctest.testmod(engine.seeds).failed == 0
