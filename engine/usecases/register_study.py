"""Use case ``register_study(study_uid)``: register a study to its patient's baseline (and to the
previous study), then record the transforms and the study's new status through the store. The
registration itself (``engine.pipeline.compute_registration``) runs in the caller's ``compute``.

The baseline is the first scan after the end of radiotherapy when known (RANO 2.0), else the
patient's first usable scan; when it changes (a late RT end date, an earlier scan arriving late),
the studies registered to the old one are registered again (:func:`register_studies`).

What the stored registrations already give is composed and checked, not optimised again
(:mod:`engine.registration.compose`): the registration to the previous study (the study's
baseline registration, then the inverse of the previous study's), and a study of an old baseline
(its old registration, then the old baseline's registration to the new one). Where a half is
missing or failed its QC, that pair is registered directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import date

import numpy as np

from engine.pipeline import RegistrationJob, RegistrationOutput, StageOutcome, qc_text
from engine.registration.compose import compose
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


def _passed_to(store: Store, study_uid: str, reference_uid: str) -> dict | None:
    """The study's current baseline registration when it is to ``reference_uid`` and passed."""
    row = sql.current_registration(store, study_uid, "baseline")
    return row if row and row["reference_study_uid"] == reference_uid and row["passed"] else None


def _composed_job(store: Store, moving_uid: str, fixed_uid: str, kind: str, reference_sequence: str,
                  chain: list[tuple[dict, bool]]) -> RegistrationJob:
    """A job that checks ``chain`` composed (each stored registration, inverted when its flag says)."""
    matrices = [np.linalg.inv(np.asarray(r["matrix"], dtype=float)) if inverse else r["matrix"] for r, inverse in chain]
    methods = sorted({str(r["method"]) for r, _ in chain})
    ids = " then ".join(f"{'inverse of ' if inverse else ''}#{r['registration_id']}" for r, inverse in chain)
    return RegistrationJob(study_files(store, moving_uid), study_files(store, fixed_uid), kind, reference_sequence,
                           composed=tuple(tuple(float(v) for v in row) for row in compose(*matrices)),
                           composed_method=f"composed ({ids}; {', '.join(methods)})")


def _previous_job(store: Store, study_uid: str, ref_uid: str, reference_sequence: str) -> RegistrationJob | None:
    """To the previous study (when it is not the baseline and not quarantined): composed from the
    two studies' baseline registrations when both passed, else registered directly."""
    prev_uid = sql.study_row(store, study_uid)["previous_study_uid"]
    if not prev_uid or prev_uid == ref_uid or sql.study_row(store, prev_uid)["status"] == StudyStatus.QUARANTINED:
        return None
    mine, theirs = _passed_to(store, study_uid, ref_uid), _passed_to(store, prev_uid, ref_uid)
    if mine is not None and theirs is not None:
        return _composed_job(store, study_uid, prev_uid, "previous", reference_sequence,
                             [(mine, False), (theirs, True)])
    return RegistrationJob(study_files(store, study_uid), study_files(store, prev_uid), "previous", reference_sequence)


def _plan_stale(store: Store, stale: Sequence[str], ref_uid: str) -> tuple[list[str], list[tuple[str, dict]]]:
    """Split studies registered to an old baseline into those registered again directly (the old
    baseline itself, and any whose old registration cannot be chained) and (study, its old
    registration) pairs to compose with the old baseline's new registration."""
    direct: list[str] = []
    chained: list[tuple[str, dict]] = []
    for uid in stale:
        old = sql.current_registration(store, uid, "baseline")
        via = old["reference_study_uid"] if old else None
        if old is None or not old["passed"] or via == uid or via not in stale:
            direct.append(uid)
        else:
            chained.append((uid, old))
    return direct, chained


def _register_jobs(store: Store, jobs: Sequence[RegistrationJob], compute: ComputeRegistrations) -> list[StageOutcome]:
    if not jobs:
        return []
    outputs = compute(jobs)
    return [commit_registration(store, j, out) for j, out in zip(jobs, outputs, strict=True)]


def _register_batch(store: Store, todo: Sequence[str], stale: Sequence[str], *, reference_sequence: str,
                            compute: ComputeRegistrations) -> list[StageOutcome]:
    """Every registration of the batch, in up to three ``compute`` calls: the direct registrations
    to the baseline, then those composed from them (studies of an old baseline), then the
    registrations to the previous study (composed from the baseline ones where both passed).

    A composed registration is checked by the same QC as a direct one; where a half is missing or
    failed its QC the registration is computed directly instead."""
    outcomes: list[StageOutcome] = []
    refs = {u: reference_study(store, sql.study_row(store, u)["patient_key"]) for u in [*todo, *stale]}
    by_patient: dict[str, list[str]] = {}
    for u in stale:
        by_patient.setdefault(str(refs[u]), []).append(u)
    direct_stale: list[str] = []
    chained: list[tuple[str, dict]] = []
    for ref_uid, uids in by_patient.items():
        d, c = _plan_stale(store, uids, ref_uid)
        direct_stale += d
        chained += c
    first = [_baseline_job(store, u, refs[u], reference_sequence) for u in [*todo, *direct_stale]]
    outcomes += _register_jobs(store, first, compute)
    second = []
    for uid, old in chained:
        ref_uid = str(refs[uid])
        old_to_new = _passed_to(store, old["reference_study_uid"], ref_uid)
        if old_to_new is None:
            second.append(RegistrationJob(study_files(store, uid), study_files(store, ref_uid), "baseline",
                                          reference_sequence))
        else:
            second.append(_composed_job(store, uid, ref_uid, "baseline", reference_sequence,
                                        [(old, False), (old_to_new, False)]))
    outcomes += _register_jobs(store, second, compute)
    # a study of an old baseline keeps its registration to the previous study when that is still the
    # same pair (the previous study is a property of the dates, not of the baseline)
    kept = {u for u in stale if (row := sql.current_registration(store, u, "previous")) is not None
            and row["reference_study_uid"] == sql.study_row(store, u)["previous_study_uid"]}
    third = [j for u in [*todo, *stale] if u not in kept and refs[u] not in (None, u)
             and (j := _previous_job(store, u, str(refs[u]), reference_sequence)) is not None]
    outcomes += _register_jobs(store, third, compute)
    return outcomes


def _baseline_job(store: Store, study_uid: str, ref_uid: str | None, reference_sequence: str) -> RegistrationJob:
    """To the patient's baseline, registered directly (no fixed study: it is the baseline)."""
    moving = study_files(store, study_uid)
    fixed = None if ref_uid is None or ref_uid == study_uid else study_files(store, ref_uid)
    return RegistrationJob(moving, fixed, "baseline", reference_sequence)


def register_studies(study_uids: Iterable[str], *, store: Store, ready: StudyStatus, reference_sequence: str,
                     compute: ComputeRegistrations) -> list[StageOutcome]:
    """Register those of ``study_uids`` in status ``ready`` (SEGMENTED, or INGESTED when
    segmentation is off), then re-register their patients' studies whose baseline changed."""
    todo = [u for u in study_uids if sql.study_row(store, u)["status"] == ready]
    patients = {sql.study_row(store, u)["patient_key"] for u in todo}
    # the baseline follows from the stored studies and treatment dates, not from any registration,
    # so the studies registered to an old one are known now and go in the same batches as the new
    # studies (one batch keeps every registration slot busy; two batches wait twice for their slowest)
    stale = [u for p in sorted(patients) for u in stale_registrations(store, p) if u not in todo]
    if stale:
        log.info("baseline changed: re-registering %d studies", len(stale))
    return _register_batch(store, todo, stale, reference_sequence=reference_sequence, compute=compute)


def register_study(study_uid: str, *, store: Store, ready: StudyStatus, reference_sequence: str,
                   compute: ComputeRegistrations) -> list[StageOutcome]:
    """One study (its registrations to the baseline and previous study, and any stale ones)."""
    return register_studies([study_uid], store=store, ready=ready, reference_sequence=reference_sequence,
                            compute=compute)
