"""Per-study processing after ingestion, as Prefect tasks: segment -> register -> assess.

Each task takes the runtime and a study UID and makes one engine call. A study's status in the
store says which step is next, so a crashed or interrupted run resumes where it stopped
(``process_pending``), whatever Prefect remembers.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE as NO_CACHE

from engine import pipeline
from engine.store import pipeline as sql
from engine.types import StudyStatus
from flows.watch_retry import retry_if_retryable

log = logging.getLogger("gliowatch.process")


@task(name="segment-study", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_if_retryable,
      cache_policy=NO_CACHE)
def segment_task(rt: Any, study_uid: str) -> pipeline.StageOutcome:
    return pipeline.segment_study(rt.store, study_uid=study_uid, segmenter=rt.segmenter, paths=rt.paths)


@task(name="register-study", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_if_retryable,
      cache_policy=NO_CACHE)
def register_task(rt: Any, study_uid: str) -> pipeline.StageOutcome:
    return pipeline.register_study(rt.store, study_uid=study_uid, registrar=rt.registrar, paths=rt.paths,
                                   reference_sequence=rt.settings.registration.reference)


@flow(name="gliowatch-process-study", validate_parameters=False)
def process_study(rt: Any, study_uid: str) -> list[pipeline.StageOutcome]:
    """Run the remaining steps of one study, as its status says."""
    outcomes: list[pipeline.StageOutcome] = []
    status = sql.study_row(rt.store, study_uid)["status"]
    if status == StudyStatus.INGESTED and rt.settings.segmentation.enabled:
        outcomes.append(_report(segment_task(rt, study_uid)))
        status = sql.study_row(rt.store, study_uid)["status"]
    if status == StudyStatus.SEGMENTED and rt.settings.registration.enabled:
        patient_key = sql.study_row(rt.store, study_uid)["patient_key"]
        outcomes.append(_report(register_task(rt, study_uid)))
        for stale in pipeline.stale_registrations(rt.store, patient_key):
            log.info("baseline changed: re-registering a study of %s", patient_key)
            outcomes.append(_report(register_task(rt, stale)))
    return outcomes


def _report(outcome: pipeline.StageOutcome) -> pipeline.StageOutcome:
    flags = f" [flags: {', '.join(outcome.flags)}]" if outcome.flags else ""
    (log.info if outcome.ok else log.warning)("%s %s: %s%s", outcome.stage,
                                               "done" if outcome.ok else "FAILED", outcome.message, flags)
    return outcome


def process_pending(rt: Any) -> int:
    """Resume every study left between steps (crash, or a step switched on later)."""
    pending = sql.pending_studies(rt.store, (StudyStatus.INGESTED, StudyStatus.SEGMENTED))
    for row in pending:
        process_study(rt, row["study_uid"])
    return len(pending)
