"""``gliowatch calibrate --model DIR [--write]``: choose the model's decision weights.

Generates a *calibration* cohort (``engine.modelling.synth.generate_cohort`` with its own seed, default
515151: neither a training seed nor the held-out evaluation seed 424242 of
``benchmarks.bench_segmentation``, both of which it refuses; ``engine.seeds``), segments every
study once as ``gliowatch segment`` does, keeps the class probabilities on the T1c grid around
the possible foreground, and searches per-label weights of the argmax
(``engine.segmentation.decision``, searched by ``engine.modelling.calibration``). ``--write`` stores the chosen weights
and the calibration's figures in DIR/config.json (``decision_weights``, ``calibration``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from engine.seeds import CALIBRATION_SEED, check_seed_for
from engine.settings import Settings

log = logging.getLogger("gliowatch.calibrate")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("calibrate", help="choose the segmentation model's decision weights on a calibration cohort")
    p.add_argument("--model", type=Path, default=Path("models/gliowatch-unet"), help="model folder (config.json)")
    p.add_argument("--patients", type=int, default=10)
    p.add_argument("--visits", type=int, default=6,
                   help="visits per patient (default 6, as bench_segmentation: pre-op, post-op, post-RT, 3 follow-ups)")
    p.add_argument("--size", default="demo", choices=("test", "demo"))
    p.add_argument("--seed", type=int, default=CALIBRATION_SEED, help=f"cohort seed (default {CALIBRATION_SEED})")
    p.add_argument("--work", type=Path, default=None, help="folder for the cohort and the cached cases (default STATE_DIR/calibration)")
    p.add_argument("--grid", default=None, help="comma-separated weights to search per label (default engine.modelling.calibration.DEFAULT_GRID)")
    p.add_argument("--write", action="store_true", help="write the chosen weights into the model's config.json")
    p.set_defaults(handler=run)


def collect_case(segmenter, volumes, *, truth: np.ndarray, true_ml: dict, study: str, tags: dict):
    """Probabilities of one study on the reference-grid box of its possible foreground."""
    from engine.modelling.calibration import CalibrationCase
    from engine.segmentation.decision import CERTAIN_BACKGROUND
    from engine.segmentation.inference import foreground_box, resample_channels
    from engine.modelling.evaluation.metrics import REGIONS

    prepared = segmenter.prepare(volumes)
    probabilities = segmenter.predict_probabilities(prepared)
    # no allowed weight (< MAX_WEIGHT) makes a voxel with p_0 >= CERTAIN_BACKGROUND foreground
    possible = probabilities[0].numpy() < CERTAIN_BACKGROUND
    reference = prepared.reference
    box = foreground_box(possible, source_affine=prepared.working_affine, reference=reference)
    if box is None:
        box = tuple((0, 1) for _ in reference.array.shape)
    maps = resample_channels(probabilities, source_affine=prepared.working_affine, reference=reference, box=box)
    window = tuple(slice(lo, hi) for lo, hi in box)
    inside = np.zeros(truth.shape, dtype=bool)
    inside[window] = True
    outside = {region: int((np.isin(truth, [int(v) for v in ids]) & ~inside).sum()) for region, ids in REGIONS.items()}
    return CalibrationCase(study=study, probabilities=maps.numpy().astype(np.float16), truth=truth[window].copy(),
                           truth_outside=outside, voxel_ml=reference.voxel_ml, true_ml=dict(true_ml), tags=tags)


def save_case(case, path: Path) -> None:
    np.savez_compressed(path, probabilities=case.probabilities, truth=case.truth,
                        meta=json.dumps({"study": case.study, "truth_outside": dict(case.truth_outside),
                                         "voxel_ml": case.voxel_ml, "true_ml": dict(case.true_ml),
                                         "tags": dict(case.tags)}))


def load_case(path: Path):
    """A cached case, compacted to the voxels the weights can change."""
    from engine.modelling.calibration import CalibrationCase, compact_case

    with np.load(path) as data:
        meta = json.loads(str(data["meta"]))
        return compact_case(CalibrationCase(
            study=meta["study"], probabilities=data["probabilities"], truth=data["truth"],
            truth_outside=meta["truth_outside"], voxel_ml=float(meta["voxel_ml"]),
            true_ml=meta["true_ml"], tags=meta.get("tags", {})))


def collect_cases(*, model_dir: Path, work: Path, patients: int, visits: int, size: str, seed: int) -> list:
    """Generate (once) the calibration cohort and segment each study (once; cached per model hash)."""
    from engine.dicom import read_nifti, read_study_files
    from engine.segmentation.inference import MonaiSegmenter
    from engine.segmentation.model_config import load_model_config
    from engine.segmentation.network import load_network
    from engine.series_rules import load_series_rules
    from engine.settings import load_settings
    from engine.modelling.synth import cohort_visits, generate_cohort
    from engine.series_choice import pick_study_volumes

    config = load_model_config(model_dir)
    net, sha = load_network(config)
    segmenter = MonaiSegmenter(config=config, net=net, weights_sha256=sha, device="cpu")
    cohort = work / f"cohort-{seed}-{patients}x{visits}-{size}"
    if not (cohort / "cohort.json").exists():
        t0 = time.perf_counter()
        generate_cohort(n_patients=patients, seed=seed, out_dir=cohort, size=size, n_visits=visits, force=True)
        log.info("calibration cohort %s generated in %.0f s", cohort, time.perf_counter() - t0)
    # the probabilities depend on the weights and on the config less its decision weights (working
    # spacing, mirrored passes, network...): both hashes name the cache
    cache = work / f"cases-{sha[:12]}-{config.probabilities_sha256()[:12]}-{cohort.name}"
    cache.mkdir(parents=True, exist_ok=True)
    rules = load_series_rules(load_settings().series_rules)
    cases = []
    for visit in cohort_visits(cohort):
        path = cache / (visit.study.replace("/", "_") + ".npz")
        if not path.exists():
            t0 = time.perf_counter()
            volumes, _ = pick_study_volumes(list(read_study_files(visit.dicom_files()).volumes), rules=rules)
            truth = read_nifti(visit.truth_labels).array.astype(np.uint8)
            case = collect_case(segmenter, volumes, truth=truth, true_ml=visit.true_ml, study=visit.study,
                                tags={"scenario": visit.scenario, "phase": visit.phase})
            save_case(case, path)
            log.info("%s: probabilities kept on a %s box (%.1f s)", visit.study, case.truth.shape,
                     time.perf_counter() - t0)
        cases.append(load_case(path))
    return cases


def run(args: argparse.Namespace, settings: Settings) -> int:
    from engine.segmentation import resolve_model_dir
    from engine.modelling.calibration import DEFAULT_GRID, calibrate, objective
    from engine.segmentation.model_config import load_model_config

    from flows.cmd_synth import cohort_size_problem

    try:
        check_seed_for(args.seed, purpose="calibration")
    except ValueError as exc:
        print(f"gliowatch calibrate: {exc}")
        return 2
    problem = cohort_size_problem(args.patients, args.visits)
    if problem:
        print(f"gliowatch calibrate: {problem}")
        return 2
    model_dir = resolve_model_dir(str(args.model))
    config = load_model_config(model_dir)
    work = args.work or settings.state_dir / "calibration"
    grid = tuple(float(v) for v in args.grid.split(",")) if args.grid else DEFAULT_GRID
    cases = collect_cases(model_dir=model_dir, work=work, patients=args.patients, visits=args.visits,
                          size=args.size, seed=args.seed)
    result = calibrate(cases, config.output_labels, grid=grid, log=log.info)

    def line(summary: dict) -> str:
        return " ".join(f"{k} {v:.3f}" for k, v in summary.items() if v is not None)

    print(f"calibration cohort: seed {args.seed}, {args.patients} patients x {args.visits} visits ({len(cases)} studies)")
    print(f"plain argmax:   {line(result.baseline)}  objective {objective(result.baseline):.4f}")
    print(f"chosen weights: {' '.join(f'{k.name} {v:g}' for k, v in result.weights.items())}")
    print(f"with weights:   {line(result.summary)}  objective {objective(result.summary):.4f}"
          f"  ({result.evaluated} combinations searched)")
    if args.write:
        path = model_dir / "config.json"
        data = json.loads(path.read_text())
        data["decision_weights"] = {k.name: v for k, v in result.weights.items()}
        data["calibration"] = {
            "command": "gliowatch calibrate",
            "seed": args.seed, "patients": args.patients, "visits": args.visits, "size": args.size,
            "studies": len(cases), "grid": list(grid),
            "objective": "Dice WT + TC + ET - median |vol err| ET - median |vol err| SNFH",
            "plain_argmax": result.baseline, "with_weights": result.summary,
        }
        path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"written: {path}")
    return 0
