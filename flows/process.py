"""Per-study processing after ingestion, as Prefect tasks on a configurable task runner.

The heavy steps (segmentation, registration) are submitted to the flow's task runner — threads by
default, a Dask cluster with ``GLIOWATCH_TASK_RUNNER=dask://host:port`` — and take only picklable
values (file paths, settings). Their results come back to the flow process, the only DuckDB
writer, which commits them. A study's status says which step is next, so an interrupted run
resumes where it stopped (``process_pending``), whatever Prefect remembers.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE as NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from engine import pipeline
from engine.errors import ConfigError, GlioWatchError
from engine.settings import RegistrationSettings, SegmentationSettings, Settings
from engine.store import pipeline as sql
from engine.types import StudyStatus
from flows.watch_retry import retry_if_retryable
from flows.writeback import write_back_pending

log = logging.getLogger("gliowatch.process")


@functools.lru_cache(maxsize=4)
def _segmenter(settings: SegmentationSettings) -> Any:
    """One model per worker process and settings, loaded on first use."""
    from engine.segmentation import load_segmenter

    return load_segmenter(settings)


@functools.lru_cache(maxsize=4)
def _registrar(settings: RegistrationSettings) -> Any:
    from engine.registration import make_registrar

    return make_registrar(settings)


@functools.lru_cache(maxsize=8)
def _gpu_slots(n: int) -> threading.BoundedSemaphore:
    """Bounds concurrent model work per worker process, so bursts queue instead of exhausting memory."""
    return threading.BoundedSemaphore(max(n, 1))


def segment_on_worker(files: pipeline.StudyFiles, settings: SegmentationSettings, paths: pipeline.StatePaths,
                      gpu_slots: int) -> pipeline.SegmentationOutput:
    with _gpu_slots(gpu_slots):
        return pipeline.compute_segmentation(files, segmenter=_segmenter(settings), paths=paths)


def register_on_worker(job: pipeline.RegistrationJob, settings: RegistrationSettings,
                       paths: pipeline.StatePaths, gpu_slots: int) -> pipeline.RegistrationOutput:
    with _gpu_slots(gpu_slots):
        return pipeline.compute_registration(job, registrar=_registrar(settings), paths=paths)


# The task objects get their own names: Dask pickles the functions by reference, so a module
# attribute must still be the plain function.
segment_task = task(name="segment-study", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_if_retryable,
                    cache_policy=NO_CACHE)(segment_on_worker)
register_task = task(name="register-study", retries=2, retry_delay_seconds=5,
                     retry_condition_fn=retry_if_retryable, cache_policy=NO_CACHE)(register_on_worker)


def make_task_runner(settings: Settings) -> Any:
    """Threads by default; ``dask://host:port`` runs the heavy tasks on an existing Dask cluster."""
    spec = settings.task_runner.strip()
    if spec.startswith("dask://"):
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=f"tcp://{spec.removeprefix('dask://')}")
    return ThreadPoolTaskRunner(max_workers=max(settings.workers, 1))


@flow(name="gliowatch-process-studies", validate_parameters=False)
def process_studies(runtime: str, study_uids: list[str]) -> list[pipeline.StageOutcome]:
    """Run the remaining steps of the given studies, as their statuses say (``runtime``: the key
    of this process's runtime, see ``flows.runtime.runtime_key``)."""
    from flows.runtime import runtime_for

    rt = runtime_for(runtime)
    settings: Settings = rt.settings
    outcomes: list[pipeline.StageOutcome] = []
    if settings.segmentation.enabled:
        todo = [u for u in study_uids if _status(rt, u) == StudyStatus.INGESTED]
        files = [pipeline.study_files(rt.store, u) for u in todo]
        futures = [segment_task.submit(f, settings.segmentation, rt.paths, settings.gpu_slots) for f in files]
        for f, fut in zip(files, futures, strict=True):
            outcomes.append(_report(pipeline.commit_segmentation(rt.store, f, fut.result())))
    if settings.registration.enabled:
        ready = StudyStatus.SEGMENTED if settings.segmentation.enabled else StudyStatus.INGESTED
        todo = [u for u in study_uids if _status(rt, u) == ready]
        outcomes += _register(rt, todo)
        patients = {sql.study_row(rt.store, u)["patient_key"] for u in todo}
        stale = [u for p in sorted(patients) for u in pipeline.stale_registrations(rt.store, p)]
        if stale:
            log.info("baseline changed: re-registering %d studies", len(stale))
            outcomes += _register(rt, stale)
    if settings.segmentation.enabled:
        patients = sorted({sql.study_row(rt.store, u)["patient_key"] for u in study_uids})
        reassess_patients(rt, patients)
    outcomes += write_back_pending(rt)  # SEG + SR into the archive (issue 33)
    return outcomes


@task(name="assess-patient", cache_policy=NO_CACHE)
def assess_task(rt: Any, patient_key: str) -> Any:
    from engine.criteria import Mode, load_criteria
    from engine.patient_assessment import assess_patient_course

    settings: Settings = rt.settings
    return assess_patient_course(
        rt.store, patient_key=patient_key, criteria=load_criteria(settings.assessment.profile),
        mode=Mode(settings.assessment.mode), paths=rt.paths, alert_sinks=tuple(rt.sinks),
        base_url=settings.alerts.dashboard_base_url)


def reassess_patients(rt: Any, patient_keys: list[str]) -> None:
    """Measure and assess each patient's whole course (writer process: store + alert outbox)."""
    for key in patient_keys:
        try:
            report = assess_task(rt, key)
        except ConfigError:
            raise  # a broken criteria file stops the service: every patient would fail the same way
        except Exception as exc:  # noqa: BLE001 - one patient's failure must not stop the stream
            _quarantine_patient(rt, key, exc)
            continue
        log.info("assessed %s: %d timepoints, %d alerts raised", key, report.n_timepoints, report.n_alerts)


def _quarantine_patient(rt: Any, patient_key: str, exc: Exception) -> None:
    """Assessment failed for a patient: its waiting studies are quarantined with the reason."""
    from engine.store import ingest as ingest_sql

    reason = (exc.reason if isinstance(exc, GlioWatchError)
              else f"Assessment failed unexpectedly ({type(exc).__name__})")
    log.error("assessment of %s failed: %s", patient_key, reason)
    with rt.store.transaction() as con:
        for uid in sql.studies_awaiting_assessment(con, patient_key):
            ingest_sql.add_quarantine(con, stage="assessment", reason=reason, study_uid=uid,
                                      patient_key=patient_key, detail=repr(exc)[:500])
            ingest_sql.set_study_status(con, uid, StudyStatus.QUARANTINED)
        ingest_sql.log_event(con, "error", f"assessment of {patient_key}: {reason}")


def _register(rt: Any, study_uids: Iterable[str]) -> list[pipeline.StageOutcome]:
    settings: Settings = rt.settings
    jobs = [j for u in study_uids
            for j in pipeline.registration_jobs(rt.store, u, reference_sequence=settings.registration.reference)]
    futures = [register_task.submit(j, settings.registration, rt.paths, settings.gpu_slots) for j in jobs]
    return [_report(pipeline.commit_registration(rt.store, j, fut.result()))
            for j, fut in zip(jobs, futures, strict=True)]


def _status(rt: Any, study_uid: str) -> str:
    return str(sql.study_row(rt.store, study_uid)["status"])


def _report(outcome: pipeline.StageOutcome) -> pipeline.StageOutcome:
    flags = f" [flags: {', '.join(outcome.flags)}]" if outcome.flags else ""
    (log.info if outcome.ok else log.warning)("%s %s: %s%s", outcome.stage,
                                               "done" if outcome.ok else "FAILED", outcome.message, flags)
    return outcome


def run_processing(rt: Any, study_uids: list[str]) -> list[pipeline.StageOutcome]:
    """``process_studies`` on the configured task runner (nothing to do: no flow run)."""
    if not study_uids:
        return []
    from flows.runtime import runtime_key

    return process_studies.with_options(task_runner=make_task_runner(rt.settings))(runtime_key(rt), study_uids)


def process_pending(rt: Any) -> list[pipeline.StageOutcome]:
    """Resume every study left between steps (crash, or a step switched on later)."""
    if not (rt.settings.segmentation.enabled or rt.settings.registration.enabled):
        return []
    pending = sql.pending_studies(rt.store, (StudyStatus.INGESTED, StudyStatus.SEGMENTED, StudyStatus.REGISTERED))
    return run_processing(rt, [row["study_uid"] for row in pending]) + write_back_pending(rt)  # issue 33
