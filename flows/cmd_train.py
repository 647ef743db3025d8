"""``gliowatch train --out DIR [--steps N] [--resume] [--seed S]``: train the segmentation model.

Synthetic cases (engine.synth) are rendered once into a cache of working-grid ``.npz`` files,
then the network trains on random augmented patches. DIR receives ``checkpoint.pt`` (resumable)
and, at every checkpoint, a shippable ``config.json`` + fp16 ``model.pt``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from engine.settings import Settings

#: training seeds are TRAIN_SEED_BASE + 0 .. cases-1; evaluation uses seeds from EVAL_SEED_BASE.
TRAIN_SEED_BASE = 100_000

log = logging.getLogger("gliowatch.train")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train the segmentation model on synthetic cases")
    p.add_argument("--out", required=True, type=Path, help="output folder (checkpoint, config.json, model.pt)")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps in total (default 2000)")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    p.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    p.add_argument("--cases", type=int, default=300, help="synthetic training cases (default 300)")
    p.add_argument("--cache", type=Path, default=None, help="case cache folder (default STATE_DIR/seg-cache)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--checkpoint-every-s", type=float, default=180.0)
    p.add_argument("--name", default="gliowatch-unet", help="model name written to config.json")
    p.add_argument("--version", default="0.1.0", help="model version written to config.json")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import torch

    from engine.segmentation.dataset import cache_cases
    from engine.segmentation.model_config import default_model_config
    from engine.segmentation.training import TrainingRecipe, train
    from engine.synth.training import sample_training_case

    if args.steps < 1 or args.cases < 1:
        print("gliowatch train: --steps and --cases must be positive")
        return 2
    torch.set_num_threads(os.cpu_count() or 1)
    base = default_model_config(name=args.name, version=args.version)
    seeds = [TRAIN_SEED_BASE + i for i in range(args.cases)]
    cache = args.cache or settings.state_dir / "seg-cache"
    synth_options = {"contrast_jitter": 0.15, "thick_slice_probability": 0.3, "normalize": False}
    written = cache_cases(
        seeds, cache_dir=cache, config=base, log=log.info,
        sample=lambda seed: sample_training_case(seed, spacing_mm=base.spacing_mm, **synth_options),
    )
    log.info("case cache %s: %d cases (%d new)", cache, len(seeds), written)
    recipe = TrainingRecipe(
        steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
        seed=args.seed, checkpoint_every_s=args.checkpoint_every_s,
    )
    config = dataclasses.replace(base, training={
        "data": "engine.synth.sample_training_case (synthetic only)",
        "train_seeds": f"{seeds[0]}..{seeds[-1]}",
        "synth_options": synth_options,
    })
    checkpoint = train(config=config, recipe=recipe, cache_dir=cache, case_seeds=seeds, out_dir=args.out,
                       resume=args.resume, log=log.info)
    print(f"checkpoint: {checkpoint}")
    print(f"weights: {args.out / config.weights_file}")
    return 0
