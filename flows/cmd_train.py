"""``gliowatch train --out DIR [--steps N] [--resume] [--seed S]``: train the segmentation model.

Synthetic cases (engine.modelling.synth) are rendered once into a cache of working-grid ``.npz`` files,
then the network trains on random augmented patches. DIR receives ``checkpoint.pt`` (resumable)
and, at every checkpoint, a shippable ``config.json`` + fp16 ``model.pt``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
from pathlib import Path

from engine.settings import Settings

# training seeds are <sampler's base> + 0 .. cases-1 (engine.seeds: the calibration and held-out
# cohorts use other seeds, which calibrate and the benchmark check)
from engine.seeds import ACQUIRED_SEED_BASE, SEED_BLOCK, TRAIN_SEED_BASE

SAMPLERS = ("acquired", "rendered")

log = logging.getLogger("gliowatch.train")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train the segmentation model on synthetic cases")
    p.add_argument("--out", required=True, type=Path, help="output folder (checkpoint, config.json, model.pt)")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps in total (default 2000)")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    p.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    p.add_argument("--cases", type=int, default=200, help="synthetic training cases (default 200, as for 0.3.0)")
    p.add_argument("--sampler", choices=SAMPLERS, default="acquired",
                   help="acquired: series on their own scanner grids through the cohort's acquisition "
                        "(engine.modelling.synth.sample_acquired_case, seeds 200000+); rendered: four channels on the "
                        "head grid (sample_training_case, seeds 100000+; the 0.2.0 recipe)")
    p.add_argument("--cache", type=Path, default=None, help="case cache folder (default STATE_DIR/seg-cache)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--checkpoint-every-s", type=float, default=180.0)
    p.add_argument("--name", default="gliowatch-unet", help="model name written to config.json")
    p.add_argument("--version", default="0.3.0", help="model version written to config.json")
    p.add_argument("--spacing", type=float, default=1.0, help="working spacing in mm (default 1.0, as for 0.3.0)")
    p.add_argument("--render-spacing", type=float, default=1.0,
                   help="spacing the synthetic cases are rendered at, no coarser than --spacing; finer gives soft "
                        "targets that hold partial volumes (default 1.0)")
    p.add_argument("--init-from", type=Path, default=None,
                   help="warm-start a new run from this model.pt (tensors whose name and shape match)")
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--consistency-weight", type=float, default=0.0,
                   help="weight of the window-consistency term (default 0: off; TrainingRecipe.consistency_weight)")
    p.add_argument("--consistency-teacher", choices=("self", "initial"), default="self",
                   help="whole-patch probabilities the window must match: the network being trained (self) or a "
                        "frozen copy of the one the run started from (initial); TrainingRecipe.consistency_teacher")
    p.add_argument("--window-supervision-weight", type=float, default=0.0,
                   help="weight of the supervised loss on a sub-window seen alone (default 0: off; "
                        "TrainingRecipe.window_supervision_weight)")
    p.add_argument("--window-statistics", choices=("running", "batch"), default="running",
                   help="batch-norm statistics of the window terms: running (batch norm frozen) or each pass's own "
                        "(batch norm keeps learning); TrainingRecipe.window_statistics")
    p.add_argument("--freeze-batch-norm", action="store_true",
                   help="keep batch norm's running statistics as they start (always so with a window term and "
                        "--window-statistics running; refused with batch)")
    p.add_argument("--tumour-centred-p", type=float, default=None,
                   help="share of patches centred on a tumour label, the rest centred anywhere on the grid "
                        "(default: AugmentationSettings.tumour_centred_p, 0.7)")
    p.add_argument("--modality-dropout-p", type=float, default=None,
                   help="chance that a training patch loses one channel, set to zero as a missing sequence is "
                        "(default: AugmentationSettings.modality_dropout_p, 0.35)")
    p.add_argument("--zoom-range", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="each patch a crop of patch/zoom voxels resized up to the patch, zoom uniform in [LOW, "
                        "HIGH]: the cached grid seen at a finer working grid's scale (1 mm cache, 0.8 mm working "
                        "grid: about 1.25; default: no zoom; AugmentationSettings.zoom_range)")
    p.add_argument("--no-cavity-weight", type=float, default=1.0,
                   help="sampling weight of a case with no resection cavity (pre-operative) against 1 for one "
                        "with a cavity (default 1: uniform; TrainingRecipe.no_cavity_weight)")
    p.add_argument("--cache-workers", type=int, default=1, help="processes rendering the case cache")
    p.add_argument("--cache-only", action="store_true", help="build the case cache and stop")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import torch

    from engine.modelling.augment import AugmentationSettings
    from engine.modelling.dataset import cache_cases_parallel
    from engine.segmentation.model_config import default_model_config
    from engine.modelling.training import TrainingRecipe, train
    from engine.modelling.synth.training import sample_acquired_case, sample_training_case

    if args.steps < 1 or args.cases < 1:
        print("gliowatch train: --steps and --cases must be positive")
        return 2
    if args.cases > SEED_BLOCK:
        print(f"gliowatch train: --cases must not exceed {SEED_BLOCK} (the training seed block; engine.seeds)")
        return 2
    if args.consistency_weight < 0 or args.window_supervision_weight < 0:
        print("gliowatch train: --consistency-weight and --window-supervision-weight must not be negative")
        return 2
    if (args.freeze_batch_norm and args.window_statistics == "batch"
            and (args.consistency_weight > 0 or args.window_supervision_weight > 0)):
        print("gliowatch train: --freeze-batch-norm cannot go with --window-statistics batch")
        return 2
    if not args.no_cavity_weight > 0:
        print("gliowatch train: --no-cavity-weight must be positive")
        return 2
    for flag, value in (("--tumour-centred-p", args.tumour_centred_p), ("--modality-dropout-p", args.modality_dropout_p)):
        if value is not None and not 0.0 <= value <= 1.0:
            print(f"gliowatch train: {flag} must lie in [0, 1]")
            return 2
    if args.zoom_range is not None and not 0.0 < args.zoom_range[0] <= args.zoom_range[1]:
        print("gliowatch train: --zoom-range must be LOW HIGH with 0 < LOW <= HIGH")
        return 2
    torch.set_num_threads(os.cpu_count() or 1)
    base = default_model_config(name=args.name, version=args.version, spacing_mm=args.spacing)
    if args.sampler == "acquired":
        seeds = [ACQUIRED_SEED_BASE + i for i in range(args.cases)]
        synth_options: dict = {"contrast_jitter": 0.15, "spacing_mm": args.render_spacing}
        sampler, data = sample_acquired_case, "engine.modelling.synth.sample_acquired_case (synthetic only)"
    else:
        seeds = [TRAIN_SEED_BASE + i for i in range(args.cases)]
        synth_options = {"contrast_jitter": 0.15, "thick_slice_probability": 0.3, "normalize": False,
                         "spacing_mm": args.render_spacing}
        sampler, data = sample_training_case, "engine.modelling.synth.sample_training_case (synthetic only)"
    cache = args.cache or settings.state_dir / f"seg-cache-{args.sampler}"
    written = cache_cases_parallel(
        seeds, cache_dir=cache, config=base, log=log.info, workers=args.cache_workers,
        sample=functools.partial(sampler, **synth_options),
    )
    log.info("case cache %s: %d cases (%d new)", cache, len(seeds), written)
    if args.cache_only:
        print(f"case cache: {cache} ({len(seeds)} cases, {written} new)")
        return 0
    recipe = TrainingRecipe(
        steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
        seed=args.seed, checkpoint_every_s=args.checkpoint_every_s, warmup_steps=args.warmup_steps,
        consistency_weight=args.consistency_weight, consistency_teacher=args.consistency_teacher,
        window_supervision_weight=args.window_supervision_weight, freeze_batch_norm=args.freeze_batch_norm,
        window_statistics=args.window_statistics, no_cavity_weight=args.no_cavity_weight,
        augmentation=AugmentationSettings(**{
            name: value for name, value in (("tumour_centred_p", args.tumour_centred_p),
                                            ("modality_dropout_p", args.modality_dropout_p),
                                            ("zoom_range", tuple(args.zoom_range) if args.zoom_range else None))
            if value is not None}),
    )
    config = dataclasses.replace(base, training={
        "data": data,
        "train_seeds": f"{seeds[0]}..{seeds[-1]}",
        "synth_options": synth_options,
        "targets": "soft class fractions (engine.modelling.dataset.class_fractions)",
        **({"init_from": str(args.init_from)} if args.init_from else {}),
    })
    checkpoint = train(config=config, recipe=recipe, cache_dir=cache, case_seeds=seeds, out_dir=args.out,
                       resume=args.resume, init_weights=args.init_from, log=log.info)
    print(f"checkpoint: {checkpoint}")
    print(f"weights: {args.out / config.weights_file}")
    return 0
