"""Use case ``register_study(study_uid)``: register a study to its patient's baseline (and to the
previous study), then record the transforms and the study's new status through the store. The
registration itself (``engine.pipeline.compute_registration``) runs in the caller's ``compute``.

The baseline is the first scan after the end of radiotherapy when known (RANO 2.0), else the
patient's first usable scan; when it changes (a late RT end date, an earlier scan arriving late),
the studies registered to the old one are registered again (:func:`register_studies`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import date

from engine.pipeline import RegistrationJob, RegistrationOutput, StageOutcome, qc_text
from engine.store import Store
from engine.store import ingest as ingest_sql
from engine.store import pipeline as sql
from engine.types import StudyStatus
from engine.usecases.segment_study import quarantine, study_files

log = logging.getLogger("gliowatch.process")

#: registers the given jobs (in order, each output for the job at the same place)
ComputeRegistrations = Callable[[Sequence[RegistrationJob]], Sequence[RegistrationOutput]]


def choose_reference(studies: Sequence[tuple[str, date | None]], rt_end: date | None) -> str | None:
    """The registration reference among (study UID, date) in date order: the first scan after RT
    end when known (the RANO 2.0 baseline), else the first scan.

    >>> d = date(2025, 3, 1)
    >>> choose_reference([("a", date(2025, 1, 1)), ("b", date(2025, 4, 1))], d), choose_reference([], None)
    ('b', None)
    """
    if not studies:
        return None
    if rt_end is not None:
        after = [uid for uid, day in studies if day is not None and day > rt_end]
        if after:
            return str(after[0])
    return str(studies[0][0])


def reference_study(store: Store, patient_key: str) -> str | None:
    """The patient's registration reference (:func:`choose_reference` over the stored studies)."""
    rows = sql.patient_studies(store, patient_key)
    return choose_reference([(r["study_uid"], r["study_date"]) for r in rows], sql.rt_end_date(store, patient_key))


def registration_jobs(store: Store, study_uid: str, *, reference_sequence: str = "T1c") -> list[RegistrationJob]:
    """To the patient's baseline (always) and to the previous study (when it is not the baseline)."""
    moving = study_files(store, study_uid)
    ref_uid = reference_study(store, moving.patient_key)
    if ref_uid is None or ref_uid == study_uid:
        return [RegistrationJob(moving, None, "baseline", reference_sequence)]
    jobs = [RegistrationJob(moving, study_files(store, ref_uid), "baseline", reference_sequence)]
    prev_uid = sql.study_row(store, study_uid)["previous_study_uid"]
    if prev_uid and prev_uid != ref_uid and sql.study_row(store, prev_uid)["status"] != StudyStatus.QUARANTINED:
        jobs.append(RegistrationJob(moving, study_files(store, prev_uid), "previous", reference_sequence))
    return jobs


def commit_registration(store: Store, job: RegistrationJob, out: RegistrationOutput) -> StageOutcome:
    """Record the registration; a failed baseline registration quarantines the study (never used
    silently), a failed registration to the previous study is recorded and reported only."""
    row = sql.study_row(store, out.study_uid)
    exam = job.moving.exam
    baseline = job.kind == "baseline"
    with store.transaction() as con:
        if out.error:
            if baseline:
                quarantine(con, row, stage="registration", reason=out.error, detail=out.error_detail)
            return StageOutcome(out.study_uid, "registration", False, f"{exam}: to {job.kind}: {out.error}")
        sql.record_registration(con, study_uid=out.study_uid, reference_study_uid=out.reference_study_uid,
                                kind=job.kind, result=out.result, resampled=out.resampled)
        passed = out.result is None or out.result.passed
        if baseline and not passed:
            quarantine(con, row, stage="registration",
                       reason=f"Registration to the baseline failed its quality check: "
                              f"{out.result.qc_reason} [{exam}]")  # type: ignore[union-attr]
        elif baseline:
            ingest_sql.set_study_status(con, out.study_uid, StudyStatus.REGISTERED)
    if out.result is None:
        return StageOutcome(out.study_uid, "registration", True, f"{exam}: is the patient's baseline scan")
    return StageOutcome(out.study_uid, "registration", passed, f"{exam}: to {job.kind} {qc_text(out.result)}")


def stale_registrations(store: Store, patient_key: str) -> list[str]:
    """Studies registered to a reference that is no longer the patient's baseline."""
    ref = reference_study(store, patient_key)
    return sql.registered_to_other_reference(store, patient_key, ref)


def _register(store: Store, study_uids: Iterable[str], *, reference_sequence: str,
              compute: ComputeRegistrations) -> list[StageOutcome]:
    jobs = [j for u in study_uids for j in registration_jobs(store, u, reference_sequence=reference_sequence)]
    if not jobs:
        return []
    outputs = compute(jobs)
    return [commit_registration(store, j, out) for j, out in zip(jobs, outputs, strict=True)]


def register_studies(study_uids: Iterable[str], *, store: Store, ready: StudyStatus, reference_sequence: str,
                     compute: ComputeRegistrations) -> list[StageOutcome]:
    """Register those of ``study_uids`` in status ``ready`` (SEGMENTED, or INGESTED when
    segmentation is off), then re-register their patients' studies whose baseline changed."""
    todo = [u for u in study_uids if sql.study_row(store, u)["status"] == ready]
    patients = {sql.study_row(store, u)["patient_key"] for u in todo}
    # the baseline follows from the stored studies and treatment dates, not from any registration,
    # so the studies registered to an old one are known now and go in the same batch as the new
    # studies (one batch keeps every registration slot busy; two batches wait twice for their slowest)
    stale = [u for p in sorted(patients) for u in stale_registrations(store, p) if u not in todo]
    if stale:
        log.info("baseline changed: re-registering %d studies", len(stale))
    return _register(store, [*todo, *stale], reference_sequence=reference_sequence, compute=compute)


def register_study(study_uid: str, *, store: Store, ready: StudyStatus, reference_sequence: str,
                   compute: ComputeRegistrations) -> list[StageOutcome]:
    """One study (its registrations to the baseline and previous study, and any stale ones)."""
    return register_studies([study_uid], store=store, ready=ready, reference_sequence=reference_sequence,
                            compute=compute)
