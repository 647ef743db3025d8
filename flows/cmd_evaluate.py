"""``gliowatch evaluate DATASET_DIR --out REPORT_DIR [--labels ...] [--model DIR | --bundle DIR]``.

Runs the segmentation the pipeline runs (the configured model, or the one named here) over a
labelled dataset in the BraTS layout and writes a report (:mod:`engine.modelling.evaluation.run`). Exit
status 0 when every case ran, 1 when some case could not be read or segmented (reported with its
reason in ``cases.csv`` and ``summary.json``), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from engine.modelling.evaluation.dataset import REFERENCE_CONVENTIONS
from engine.settings import Settings

log = logging.getLogger("gliowatch.evaluate")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="measure a segmentation model on a labelled dataset (BraTS layout)")
    p.add_argument("dataset_dir", type=Path, help="one folder per case: <case>-t1n/-t1c/-t2w/-t2f[-seg].nii.gz "
                   "(or t1/t1c/t2/flair); a sequence may be missing")
    p.add_argument("--out", required=True, type=Path, help="report folder (created; refused if not empty without --force)")
    p.add_argument("--labels", choices=REFERENCE_CONVENTIONS, default="auto",
                   help="convention of the reference labels (default auto: {1,2,4} is brats2021, else brats2024)")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--model", type=Path, default=None,
                       help="one GlioWatch model folder (a network, or gliowatch-anomaly) for every case; by "
                            "default the configured segmentation, which sends skull-stripped cases to "
                            "segmentation.stripped_model_dir")
    model.add_argument("--bundle", type=Path, default=None, help="a MONAI bundle folder")
    p.add_argument("--bundle-labels", default=None, help="the bundle's output convention (default: the configured one)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda (default: the configured one)")
    p.add_argument("--force", action="store_true", help="write into a report folder that is not empty")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.modelling.evaluation.dataset import discover_cases
    from engine.modelling.evaluation.run import evaluate_dataset
    from engine.segmentation import load_segmenter

    out: Path = args.out
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"gliowatch evaluate: {out} is not empty; use --force to write into it")
        return 2
    cases = discover_cases(args.dataset_dir)
    seg = settings.segmentation
    changes: dict[str, object] = {}
    if args.model is not None:
        changes.update(model_dir=str(args.model.resolve()), bundle_dir="", stripped_model_dir="")
    if args.bundle is not None:
        changes.update(bundle_dir=str(args.bundle.resolve()), stripped_model_dir="")
    if args.bundle_labels:
        changes["bundle_labels"] = args.bundle_labels
    if args.device:
        changes["device"] = args.device
    segmenter = load_segmenter(dataclasses.replace(seg, **changes))
    out.mkdir(parents=True, exist_ok=True)
    print(f"evaluating {len(cases)} case(s) from {args.dataset_dir}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("cases", total=len(cases))
        outcomes, summary = evaluate_dataset(
            cases, segmenter=segmenter, convention=args.labels, out_dir=out,
            dataset=str(args.dataset_dir), progress=lambda name: bar.update(task, advance=1, description=name),
        )
    for o in outcomes:
        if o.status == "scored":
            dice = " ".join(f"{r} {o.scores[r].dice:.3f}" for r in ("WT", "TC", "ET"))
            print(f"  {o.case}: Dice {dice} ({o.convention}); RC {o.predicted_ml.get('RC', 0):.2f} mL; {o.seconds:.1f} s")
        elif o.status == "unlabelled":
            vols = ", ".join(f"{k} {v:.1f}" for k, v in o.predicted_ml.items())
            print(f"  {o.case}: no reference; {vols} mL; {o.seconds:.1f} s")
        else:
            print(f"  {o.case}: ERROR {o.reason}")
    for model in summary["models"]:
        weights = str(model["weights_sha256"])[:12] or "none"
        print(f"model: {model['model_name']} {model['model_version']} (weights {weights}, config "
              f"{str(model['config_sha256'])[:12]}, {model['device']}) on {model['cases']} case(s)")
    regions = summary["regions"]
    if summary["cases"]["scored"]:
        means = " ".join(f"{r} {regions[r]['dice']['mean']:.3f}" for r in ("WT", "TC", "ET"))
        print(f"mean Dice over {summary['cases']['scored']} scored case(s): {means}")
    print(f"report: {out / 'summary.json'}, {out / 'cases.csv'}, {out / 'summary.png'}, {out / 'sheets'}/")
    return 1 if summary["cases"]["errors"] else 0

