"""``gliowatch segment STUDY_DIR --out LABELS.nii.gz [--volumes VOLUMES.json] [--force]``.

Reads every series of one study folder of DICOM files, classifies them with the series rules
and keeps one series per sequence, the finest voxels winning (``engine.series_choice``, the rule
ingestion applies), segments, and writes the label volume on the T1c's grid (NIfTI) and the
volumes in mL per label (JSON keys NETC, SNFH, ET, RC, plus the flags and the model's identity).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from engine.errors import MissingSequenceError
from engine.settings import Settings
from engine.types import Sequence

log = logging.getLogger("gliowatch.segment")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("segment", help="segment one study folder of DICOM files")
    p.add_argument("study_dir", type=Path, help="folder with the DICOM files of one study")
    p.add_argument("--out", required=True, type=Path, help="label volume to write (.nii.gz)")
    p.add_argument("--volumes", type=Path, default=None, help="JSON file for the volumes in mL")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from engine.dicom import read_study_dir, write_nifti
    from engine.segmentation import load_segmenter
    from engine.series_choice import pick_study_volumes
    from engine.series_rules import load_series_rules

    for path in (args.out, args.volumes):
        if path is not None and path.exists() and not args.force:
            print(f"gliowatch segment: {path} exists; use --force to overwrite")
            return 2
    study = read_study_dir(args.study_dir)
    for refused in study.refused:
        log.warning("series refused: %s (%s)", refused.series_description, refused.reason)
    volumes, notes = pick_study_volumes(list(study.volumes), rules=load_series_rules(settings.series_rules))
    for line in notes:
        log.info("series %s", line)
    if Sequence.T1C not in volumes and Sequence.T1 not in volumes:
        raise MissingSequenceError(
            "No post-contrast T1 or plain T1 series was found",
            exam=str(args.study_dir),
            action="Volumes were not measured. Check the series names or add a rule to the series rules file.",
        )
    segmenter = load_segmenter(settings.segmentation)
    result = segmenter.segment(volumes, exam=str(args.study_dir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(result.labels, args.out, force=args.force)
    report = {
        **{name: round(ml, 3) for name, ml in result.volumes_ml.items()},
        "flags": list(result.flags),
        **result.provenance(),
    }
    if args.volumes is not None:
        args.volumes.parent.mkdir(parents=True, exist_ok=True)
        args.volumes.write_text(json.dumps(report, indent=2) + "\n")
    volumes_text = ", ".join(f"{k} {v:.1f} mL" for k, v in result.volumes_ml.items())
    print(f"{args.out}: {volumes_text}")
    for flag in result.flags:
        print(f"flag: {flag}")
    return 0
