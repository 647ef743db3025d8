"""Per-study processing after ingestion: thin Prefect flows and tasks over the use cases.

``process_studies`` calls the use cases in order (``engine.usecases``: segment, register, assess)
with the writer's collaborators (:class:`flows.runtime.Runtime`); each use case reads the store,
hands the heavy middle to a ``compute`` callable from here and commits what comes back. The heavy
steps (segmentation, registration) run as Prefect tasks on the configured task runner — threads
by default, a Dask cluster with ``GLIOWATCH_TASK_RUNNER=dask://host:port`` — inside a small flow
(``gliowatch-segment-studies``, ``gliowatch-register-studies``) whose parameters are picklable
jobs, settings and paths only, because a flow's parameters travel with every task it submits to
Dask and a DuckDB connection cannot. A study's status says which step is next, so an interrupted
run resumes where it stopped (``process_pending``), whatever Prefect remembers.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prefect import flow, task
from prefect.cache_policies import NONE as NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from engine import pipeline
from engine.registration import Registrar
from engine.segmentation import Segmenter, segmentation_on_gpu
from engine.settings import RegistrationSettings, SegmentationSettings, Settings
from engine.state_paths import StatePaths
from engine.store import Store
from engine.store import pipeline as sql
from engine.torch_threads import torch_threads
from engine.types import SegmentationOutput, StudyStatus
from engine.usecases.assess_patient import AssessmentPolicy, assess_patient, assess_patients
from engine.usecases.patient_course import PatientReport
from engine.usecases.register_study import ComputeRegistrations, register_studies
from engine.usecases.segment_study import ComputeSegmentations, segment_studies
from flows.runtime import Runtime
from flows.watch_retry import retry_if_retryable
from flows.writeback import write_back_pending

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

log = logging.getLogger("gliowatch.process")


@functools.lru_cache(maxsize=4)
def _segmenter(settings: SegmentationSettings) -> Segmenter:
    """One model per worker process and settings, loaded on first use."""
    from engine.segmentation import load_segmenter

    return load_segmenter(settings)


@functools.lru_cache(maxsize=4)
def _registrar(settings: RegistrationSettings) -> Registrar:
    from engine.registration import make_registrar

    return make_registrar(settings)


@functools.lru_cache(maxsize=8)
def _gpu_slots(n: int) -> threading.BoundedSemaphore:
    """Bounds concurrent model work per worker process, so bursts queue instead of exhausting memory."""
    return threading.BoundedSemaphore(max(n, 1))


def segment_on_worker(files: pipeline.StudyFiles, settings: SegmentationSettings, paths: StatePaths,
                      gpu_slots: int, cpu_threads: int = 0) -> SegmentationOutput:
    """One study; ``gpu_slots`` bounds the model runs of this worker process at once, and
    ``cpu_threads`` (CPU, several studies side by side) is each run's share of the cores (0: torch's
    own setting, every core)."""
    with _gpu_slots(gpu_slots), torch_threads(cpu_threads):
        return pipeline.compute_segmentation(files, segmenter=_segmenter(settings), paths=paths)


def register_on_worker(job: pipeline.RegistrationJob, settings: RegistrationSettings,
                       paths: StatePaths, gpu_slots: int) -> pipeline.RegistrationOutput:
    with _gpu_slots(gpu_slots):
        return pipeline.compute_registration(job, registrar=_registrar(settings), paths=paths)


# The task objects get their own names: Dask pickles the functions by reference, so a module
# attribute must still be the plain function.
segment_task = task(name="segment-study", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_if_retryable,
                    cache_policy=NO_CACHE)(segment_on_worker)
register_task = task(name="register-study", retries=2, retry_delay_seconds=5,
                     retry_condition_fn=retry_if_retryable, cache_policy=NO_CACHE)(register_on_worker)


def make_task_runner(settings: Settings) -> TaskRunner:
    """Threads by default; ``dask://host:port`` runs the heavy tasks on an existing Dask cluster."""
    spec = settings.task_runner.strip()
    if spec.startswith("dask://"):
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=f"tcp://{spec.removeprefix('dask://')}")
    return ThreadPoolTaskRunner(max_workers=max(settings.workers, 1))


@flow(name="gliowatch-segment-studies", validate_parameters=False)
def segment_flow(files: list[pipeline.StudyFiles], settings: SegmentationSettings, paths: StatePaths,
                 gpu_slots: int, cpu_threads: int = 0) -> list[SegmentationOutput]:
    """Segment the studies side by side on the flow's task runner; outputs in the same order."""
    futures = [segment_task.submit(f, settings, paths, gpu_slots, cpu_threads) for f in files]
    return [fut.result() for fut in futures]


@flow(name="gliowatch-register-studies", validate_parameters=False)
def register_flow(jobs: list[pipeline.RegistrationJob], settings: RegistrationSettings, paths: StatePaths,
                  gpu_slots: int) -> list[pipeline.RegistrationOutput]:
    """Register the jobs side by side on the flow's task runner; outputs in the same order."""
    futures = [register_task.submit(j, settings, paths, gpu_slots) for j in jobs]
    return [fut.result() for fut in futures]


def segment_on_runner(settings: Settings, paths: StatePaths) -> ComputeSegmentations:
    """``compute`` for ``segment_studies``: the segment flow on the configured task runner."""
    def compute(files: Sequence[pipeline.StudyFiles]) -> list[SegmentationOutput]:
        run = segment_flow.with_options(task_runner=make_task_runner(settings))
        slots, threads = segmentation_slots(settings, len(files))
        return run(list(files), settings.segmentation, paths, slots, threads)
    return compute


def segmentation_slots(settings: Settings, n_studies: int) -> tuple[int, int]:
    """(segmentations one worker process runs at once, torch threads each; 0 = every core).

    On a GPU: ``gpu_slots``, the GPU's threads untouched. On the CPU a lone study uses every core,
    and a batch runs up to one study per worker thread side by side with the cores shared out
    (``engine.torch_threads``: 1.27x the batch's speed on 2 cores with one core busy elsewhere).
    Measured on 6 demo studies (2026-12-07): the label maps on 1 thread each, two at a time, are
    voxel for voxel those on 2 threads one after another."""
    import os

    if segmentation_on_gpu(settings.segmentation):
        return settings.gpu_slots, 0
    side_by_side = max(1, min(n_studies, max(settings.workers, settings.gpu_slots)))
    if side_by_side == 1:
        return 1, 0
    return side_by_side, max(1, (os.cpu_count() or 1) // side_by_side)


def register_on_runner(settings: Settings, paths: StatePaths) -> ComputeRegistrations:
    """``compute`` for ``register_studies``: the register flow on the configured task runner."""
    def compute(jobs: Sequence[pipeline.RegistrationJob]) -> list[pipeline.RegistrationOutput]:
        run = register_flow.with_options(task_runner=make_task_runner(settings))
        return run(list(jobs), settings.registration, paths, registration_slots(settings))
    return compute


def registration_slots(settings: Settings) -> int:
    """Registrations one worker process runs at once: ``gpu_slots`` on a GPU; on the CPU one per
    worker thread, since each CPU registration runs on a single torch thread (TorchConfig
    ``cpu_threads``), so one at a time would leave the other cores idle."""
    from engine.registration import registration_on_gpu

    return settings.gpu_slots if registration_on_gpu(settings.registration) else max(settings.workers, settings.gpu_slots)


def process_studies(rt: Runtime, study_uids: list[str]) -> list[pipeline.StageOutcome]:
    """Run the remaining steps of the given studies, as their statuses say: segment, register,
    then assess their patients."""
    settings = rt.settings
    outcomes: list[pipeline.StageOutcome] = []
    if settings.segmentation.enabled:
        outcomes += map(_report, segment_studies(study_uids, store=rt.store,
                                                 compute=segment_on_runner(settings, rt.paths)))
    if settings.registration.enabled:
        ready = StudyStatus.SEGMENTED if settings.segmentation.enabled else StudyStatus.INGESTED
        outcomes += map(_report, register_studies(study_uids, store=rt.store, ready=ready,
                                                  reference_sequence=settings.registration.reference,
                                                  compute=register_on_runner(settings, rt.paths)))
    if settings.segmentation.enabled:
        patients = sorted({sql.study_row(rt.store, u)["patient_key"] for u in study_uids})
        reassess_patients(rt, patients)
    outcomes += write_back_pending(rt)  # SEG + SR into the archive (issue 33)
    return outcomes


@task(name="assess-patient", cache_policy=NO_CACHE)
def assess_task(store: Store, policy: AssessmentPolicy, patient_key: str) -> PatientReport:
    return assess_patient(patient_key, store=store, policy=policy)


def reassess_patients(rt: Runtime, patient_keys: list[str]) -> None:
    """Measure and assess each patient's course (writer process: store + alert outbox); a
    patient whose assessment fails has its waiting studies quarantined."""
    assess_patients(patient_keys, store=rt.store, policy=rt.assessment,
                    assess=lambda key: assess_task(rt.store, rt.assessment, key))


def _report(outcome: pipeline.StageOutcome) -> pipeline.StageOutcome:
    flags = f" [flags: {', '.join(outcome.flags)}]" if outcome.flags else ""
    (log.info if outcome.ok else log.warning)("%s %s: %s%s", outcome.stage,
                                               "done" if outcome.ok else "FAILED", outcome.message, flags)
    return outcome


def run_processing(rt: Runtime, study_uids: list[str]) -> list[pipeline.StageOutcome]:
    """``process_studies`` (nothing to do: nothing runs)."""
    if not study_uids:
        return []
    return process_studies(rt, study_uids)


def process_pending(rt: Runtime) -> list[pipeline.StageOutcome]:
    """Resume every study left between steps (crash, or a step switched on later)."""
    if not (rt.settings.segmentation.enabled or rt.settings.registration.enabled):
        return []
    pending = sql.pending_studies(rt.store, (StudyStatus.INGESTED, StudyStatus.SEGMENTED, StudyStatus.REGISTERED))
    return run_processing(rt, [row["study_uid"] for row in pending]) + write_back_pending(rt)  # issue 33
