"""`gliowatch rescore [--model NAME|DIR] [--profile P] [--mode M] [--patient KEY]`.

Recomputes whole patient histories with another segmentation model and/or criteria profile, so no
trajectory mixes versions: every study of the patient is re-segmented (and re-registered, since
the resampled labels change) when a model is given, then the patient is re-assessed. ``--model``
names a registry model (``gliowatch models list``), which then runs alone for every study (a study
lacking one of its sequences is quarantined with the reason), or, as before, a model folder. Earlier
segmentations, registrations and measurements are kept and marked superseded.
"""

from __future__ import annotations

import argparse
import dataclasses

from engine.settings import SegmentationSettings, Settings
from flows.prefect_env import configure_prefect


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("rescore", help="recompute patient histories with a new model or criteria")
    p.add_argument("--model", help="registry model name (gliowatch models list) or a model folder (config.json + weights)")
    p.add_argument("--profile", choices=["rano2", "mrano", "rano2010"])
    p.add_argument("--mode", choices=["2d", "3d"])
    p.add_argument("--patient", help="only this pseudonymous patient key")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.model:
        settings = dataclasses.replace(settings, segmentation=_with_model(settings.segmentation, args.model))
    if args.profile or args.mode:
        settings = dataclasses.replace(settings, assessment=dataclasses.replace(
            settings.assessment, profile=args.profile or settings.assessment.profile,
            mode=args.mode or settings.assessment.mode))
    configure_prefect(settings)
    from engine.store import publish_snapshot
    from engine.store import ingest as ingest_sql
    from engine.store.pipeline import studies_to_rescore
    from engine.types import StudyStatus
    from flows.process import reassess_patients, run_processing
    from flows.runtime import build_runtime
    from flows.writeback import write_back_pending
    from engine.errors import GlioWatchError

    rt = build_runtime(settings)
    try:
        rows = studies_to_rescore(rt.store, args.patient or None)
        patients = sorted({r["patient_key"] for r in rows})
        if args.model:
            with rt.store.transaction() as con:
                for r in rows:
                    ingest_sql.set_study_status(con, r["study_uid"], StudyStatus.INGESTED)
            run_processing(rt, [r["study_uid"] for r in rows])
        else:
            reassess_patients(rt, patients)
            try:  # the new SEG/SR now rather than at the service's next cycle
                write_back_pending(rt)
            except GlioWatchError as exc:
                print(f"write-back deferred to the service's next cycle: {exc.reason}")
        publish_snapshot(rt.store, settings.snapshot_path)
    finally:
        rt.close()
    print(f"rescored {len(rows)} studies of {len(patients)} patients"
          + (f" with model {args.model}" if args.model else "")
          + f", criteria {settings.assessment.profile}/{settings.assessment.mode}")
    return 0


def _with_model(segmentation: SegmentationSettings, model: str) -> SegmentationSettings:
    """The registry model named ``model`` alone, else ``model`` as the model folder."""
    from engine.segmentation.registry import registry_entries

    if model in {e.name for e in registry_entries(segmentation)}:
        return dataclasses.replace(segmentation, model=model)
    return dataclasses.replace(segmentation, model_dir=model, bundle_dir="", model="")
