"""A state folder produced by the real pipeline, for the pages that read pipeline files.

One synthetic progression patient (3 visits, test size) read from a ``FolderArchive`` and taken
through the use cases' steps the flow runs (``flows.process``), without Prefect: ingestion,
segmentation with the shipped model, registration to the baseline with the configured registrar,
measurement and assessment, then the published snapshot. Paths are the runtime's
(``flows.runtime.Runtime.paths``), so the files lie exactly where a running service puts them.
About a minute on two CPU cores; the dashboard tests build it once per session.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine import pipeline
from engine.archive.folder import FolderArchive
from engine.auth import add_user
from engine.criteria import Mode, load_criteria
from engine.ingest import ingest_study
from engine.usecases.patient_course import assess_patient_course
from engine.usecases.register_study import register_studies
from engine.usecases.segment_study import commit_segmentation, study_files
from engine.types import StudyStatus
from engine.registration import make_registrar
from engine.segmentation import load_segmenter
from engine.settings import Settings
from engine.store import publish_snapshot
from engine.usecases.follow_archive import run_cycle
from engine.modelling.synth import generate_cohort
from flows.runtime import Runtime, build_runtime
from tests.dashboard.store_factory import RADIOLOGIST

N_VISITS = 3


@dataclass(frozen=True, slots=True)
class PipelineState:
    settings: Settings
    patient_key: str
    study_uids: tuple[str, ...]  # in visit order; the first is the baseline


def build_pipeline_state(root: Path) -> PipelineState:
    cohort = root / "cohort"
    generate_cohort(n_patients=1, seed=5, out_dir=cohort, size="test", n_visits=N_VISITS,
                    scenarios=["progression"])
    settings = Settings(state_dir=root / "state")
    rt = build_runtime(settings, archive=FolderArchive(cohort))
    try:
        run_cycle(archive=rt.archive, store=rt.store,
                  ingest=lambda sid: ingest_study(rt.archive, sid, rules=rt.rules, volumes_dir=rt.volumes_dir,
                                                  key_salt=rt.key_salt))
        rows = rt.store.query("SELECT study_uid, patient_key FROM studies ORDER BY study_date")
        uids = tuple(str(uid) for uid, _ in rows)
        _segment(rt, uids)
        _register(rt, uids)
        patient_key = str(rows[0][1])
        assess_patient_course(rt.store, patient_key=patient_key, criteria=load_criteria(settings.assessment.profile),
                              mode=Mode(settings.assessment.mode), paths=rt.paths, alert_sinks=tuple(rt.sinks),
                              base_url=settings.alerts.dashboard_base_url)
        publish_snapshot(rt.store, settings.snapshot_path)
    finally:
        rt.close()
    add_user(settings.state_dir / "users.toml", name=RADIOLOGIST[0], role="radiologist", password=RADIOLOGIST[1])
    return PipelineState(settings=settings, patient_key=patient_key, study_uids=uids)


def _segment(rt: Runtime, study_uids: tuple[str, ...]) -> None:
    segmenter = load_segmenter(rt.settings.segmentation)
    for uid in study_uids:
        files = study_files(rt.store, uid)
        outcome = commit_segmentation(
            rt.store, files, pipeline.compute_segmentation(files, segmenter=segmenter, paths=rt.paths))
        if not outcome.ok:
            msg = f"The pipeline state cannot be built: segmentation failed: {outcome.message}"
            raise RuntimeError(msg)


def _register(rt: Runtime, study_uids: tuple[str, ...]) -> None:
    registrar = make_registrar(rt.settings.registration)
    for uid in study_uids:
        outcomes = register_studies(
            [uid], store=rt.store, ready=StudyStatus.SEGMENTED, reference_sequence=rt.settings.registration.reference,
            compute=lambda jobs: [pipeline.compute_registration(j, registrar=registrar, paths=rt.paths) for j in jobs])
        failed = [o for o in outcomes if not o.ok and "to previous" not in o.message]
        if failed:
            msg = f"The pipeline state cannot be built: registration failed: {failed[0].message}"
            raise RuntimeError(msg)
