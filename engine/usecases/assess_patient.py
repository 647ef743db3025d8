"""Use case ``assess_patient(patient_key)``: measure what changed in the patient's course, run the
response, PsP prior and growth over it and queue the alerts, in one transaction
(:func:`engine.usecases.patient_course.assess_patient_course`).

A patient whose assessment fails has its waiting studies quarantined with the reason and the
stream goes on; a broken criteria file (:class:`~engine.errors.ConfigError`) is raised, because
every patient would fail the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.criteria import Mode, load_criteria
from engine.errors import ConfigError, GlioWatchError
from engine.state_paths import StatePaths
from engine.store import Store
from engine.store import ingest as ingest_sql
from engine.store import pipeline as pipeline_sql
from engine.types import StudyStatus
from engine.usecases.patient_course import PatientReport, assess_patient_course

log = logging.getLogger("gliowatch.process")


@dataclass(frozen=True, slots=True)
class AssessmentPolicy:
    """How patients are assessed, from the settings: response profile and mode, where the label
    files are, which alert sinks get the alerts and the dashboard link they carry."""

    profile: str
    mode: str
    paths: StatePaths
    alert_sinks: tuple[str, ...]
    base_url: str


def assess_patient(patient_key: str, *, store: Store, policy: AssessmentPolicy) -> PatientReport:
    """Measure and assess one patient's course (raises on failure; see :func:`assess_patients`)."""
    return assess_patient_course(
        store, patient_key=patient_key, criteria=load_criteria(policy.profile), mode=Mode(policy.mode),
        paths=policy.paths, alert_sinks=policy.alert_sinks, base_url=policy.base_url)


def assess_patients(patient_keys: Iterable[str], *, store: Store, policy: AssessmentPolicy,
                    assess: Callable[[str], PatientReport] | None = None) -> list[PatientReport]:
    """Assess each patient (through ``assess``, e.g. a Prefect task calling :func:`assess_patient`;
    by default :func:`assess_patient` itself); one patient's failure quarantines its waiting
    studies and the others go on. Returns the reports of the patients assessed."""
    reports = []
    for key in patient_keys:
        try:
            report = (assess(key) if assess is not None else assess_patient(key, store=store, policy=policy))
        except ConfigError:
            raise  # a broken criteria file stops the service: every patient would fail the same way
        except Exception as exc:  # noqa: BLE001 - one patient's failure must not stop the stream
            quarantine_patient(store, key, exc)
            continue
        log.info("assessed %s: %d timepoints, %d alerts raised", key, report.n_timepoints, report.n_alerts)
        reports.append(report)
    return reports


def quarantine_patient(store: Store, patient_key: str, exc: Exception) -> None:
    """Assessment failed for a patient: its waiting studies are quarantined with the reason."""
    reason = (exc.reason if isinstance(exc, GlioWatchError)
              else f"Assessment failed unexpectedly ({type(exc).__name__})")
    log.error("assessment of %s failed: %s", patient_key, reason)
    with store.transaction() as con:
        for uid in pipeline_sql.studies_awaiting_assessment(con, patient_key):
            ingest_sql.add_quarantine(con, stage="assessment", reason=reason, study_uid=uid,
                                      patient_key=patient_key, detail=repr(exc)[:500])
            ingest_sql.set_study_status(con, uid, StudyStatus.QUARANTINED)
        ingest_sql.log_event(con, "error", f"assessment of {patient_key}: {reason}")
