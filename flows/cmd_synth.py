"""`gliowatch synth`: write a synthetic longitudinal glioma cohort as DICOM (+ ground truth).

    gliowatch synth --patients 5 --out data/synth --seed 7 --size demo [--upload] [--force]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from engine.settings import Settings

log = logging.getLogger("gliowatch.synth")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("synth", help="generate a synthetic glioma follow-up cohort (DICOM)")
    p.add_argument("--patients", type=int, default=5, help="number of patients (default 5)")
    p.add_argument("--out", required=True, help="output folder (must be empty or absent)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", choices=("test", "demo"), default="demo",
                   help="test: coarse and fast; demo: realistic resolution (default)")
    p.add_argument("--visits", type=int, default=None,
                   help="visits per patient (default 3 for test, 8 for demo)")
    p.add_argument("--upload", action="store_true",
                   help="upload the cohort to the project's Orthanc in visit order")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    p.set_defaults(handler=run)


def cohort_size_problem(patients: int, visits: int | None) -> str | None:
    """Why a cohort of this size cannot be written (None when it can): checked before any work."""
    from engine.modelling.synth.scenarios import MIN_VISITS

    if patients < 1:
        return f"--patients must be at least 1, not {patients}"
    if visits is not None and visits < MIN_VISITS:
        return f"--visits must be at least {MIN_VISITS} (pre-op, post-op, post-RT), not {visits}"
    return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    from engine.modelling.synth import generate_cohort

    problem = cohort_size_problem(args.patients, args.visits)
    if problem:
        print(f"gliowatch synth: {problem}")
        return 2

    uploader = None
    if args.upload:
        from flows.runtime import orthanc_archive

        uploader = orthanc_archive(settings)
    try:
        manifest = generate_cohort(
            n_patients=args.patients, seed=args.seed, out_dir=Path(args.out), size=args.size,
            upload=uploader, n_visits=args.visits, force=args.force,
        )
    except FileExistsError as exc:
        print(f"gliowatch synth: {exc}")
        return 2
    cohort = json.loads(manifest.read_text())
    n_visits = sum(len(p["visits"]) for p in cohort["patients"])
    print(f"wrote {len(cohort['patients'])} patients, {n_visits} studies: {manifest}")
    for patient in cohort["patients"]:
        print(f"  {patient['patient_id']}  {patient['scenario']:<18} "
              f"{len(patient['visits'])} visits")
    if uploader is not None:
        print("uploaded to Orthanc in visit order")
    return 0
