"""Which synthetic seeds serve which purpose, so that no evaluation sees a training patient.

* training: ``gliowatch train`` draws case ``i`` from seed ``base + i`` — ``sample_training_case``
  from :data:`TRAIN_SEED_BASE`, ``sample_acquired_case`` from :data:`ACQUIRED_SEED_BASE` — and
  each sampler keeps to its block of :data:`SEED_BLOCK` seeds;
* calibration: ``gliowatch calibrate`` chooses a model's decision weights on the cohort of
  :data:`CALIBRATION_SEED` (by default);
* held-out evaluation: ``benchmarks.bench_segmentation`` measures on the cohort of
  :data:`EVAL_SEED` (by default), or on another seed that none of the above uses.

A model is chosen on the calibration cohort and reported on a held-out one; a seed that was
consulted while choosing among candidates is no longer a clean held-out check, so the benchmark
takes another seed (``--seed``) for that, and refuses those it must not use.

>>> seed_use(200_063)
'training (sample_acquired_case, seeds 200000-299999)'
>>> seed_use(424_242) is None
True
"""

from __future__ import annotations

TRAIN_SEED_BASE = 100_000
ACQUIRED_SEED_BASE = 200_000
SEED_BLOCK = 100_000
CALIBRATION_SEED = 515_151
EVAL_SEED = 424_242

_TRAINING_BLOCKS = (("sample_training_case", TRAIN_SEED_BASE), ("sample_acquired_case", ACQUIRED_SEED_BASE))


def seed_use(seed: int) -> str | None:
    """What a seed is reserved for (training blocks, calibration), or None for a free one.

    The held-out evaluation seed is free by this rule: only what a model was fitted or
    chosen on is reserved.
    """
    for sampler, base in _TRAINING_BLOCKS:
        if base <= seed < base + SEED_BLOCK:
            return f"training ({sampler}, seeds {base}-{base + SEED_BLOCK - 1})"
    if seed == CALIBRATION_SEED:
        return "calibration (gliowatch calibrate's default cohort)"
    return None


def check_seed_for(seed: int, *, purpose: str) -> None:
    """Refuse a cohort seed that would let ``purpose`` see data a model was fitted or chosen on.

    ``purpose`` is ``"evaluation"`` (refuses training and calibration seeds) or
    ``"calibration"`` (refuses training seeds and :data:`EVAL_SEED`, which would stop being
    held out).
    """
    if purpose not in ("evaluation", "calibration"):
        msg = f"purpose must be 'evaluation' or 'calibration', not {purpose!r}"
        raise ValueError(msg)
    use = seed_use(seed)
    if purpose == "calibration":
        if seed == CALIBRATION_SEED:
            return
        if seed == EVAL_SEED:
            use = "held-out evaluation (bench_segmentation's default cohort)"
    if use is not None:
        msg = f"seed {seed} is reserved for {use}; {purpose} needs a seed of its own"
        raise ValueError(msg)
