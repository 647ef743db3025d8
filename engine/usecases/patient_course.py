"""Measure and assess one patient's whole course, then queue its alerts — in one transaction.

The usable studies (segmented, and registered unless registration is off) are measured by
:func:`engine.usecases.course_measurements.measure_course`, which re-measures only the studies
whose inputs changed and keeps the stored measurement of the others. Then the response state
machine, PsP prior and growth fits run over the stored measurements (:func:`reassess_patient`:
read through the store, decided by the pure engine, written back through the store), and the
alerts they raise are written to the outbox in the same transaction (exactly once per event, by
idempotency key). Quality events (quarantine, failed registration, segmentation flags) raise QA
alerts; one flag needs the clinical record and is added here: a resection cavity on a scan before
the first recorded surgery.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date

from collections.abc import Mapping

from engine.alerts import AlertInput, QaEvents, evaluate_alerts
from engine.alerts.adapter import alert_inputs
from engine.criteria import Criteria, Mode
from engine.events import patient_context, with_clinical_values
from engine.reader_values import apply_reader_values
from engine.response import PatientContext, ResponseCall, Timepoint, assess_patient
from engine.risk import PspEstimate, psp_at_preliminary_pds
from engine.state_paths import StatePaths
from engine.segmentation.sanity import cavity_before_surgery_flag
from engine.store import Store
from engine.store import alerts as alerts_sql
from engine.store import assessment as sql
from engine.store import course
from engine.store import ingest as ingest_sql
from engine.store import reader as reader_sql
from engine.trajectory import GrowthFit, fit_growth_since_nadir
from engine.types import StudyStatus
from engine.usecases.course_measurements import measure_course
from engine.usecases.register_study import reference_study


@dataclass(frozen=True, slots=True)
class PatientReport:
    patient_key: str
    n_timepoints: int
    n_alerts: int
    lines: tuple[str, ...]


def assess_patient_course(
    store: Store, *, patient_key: str, criteria: Criteria, mode: Mode, paths: StatePaths,
    alert_sinks: tuple[str, ...], base_url: str,
) -> PatientReport:
    rows = course.usable_studies(store, patient_key)
    measured = measure_course(rows, baseline_uid=reference_study(store, patient_key), criteria=criteria,
                              paths=paths, stored=sql.current_measurement_inputs(store, patient_key))
    qa = _qa_events(store, patient_key)
    with store.transaction() as con:
        for c in measured:
            if c.measurement is None:  # inputs unchanged: the stored measurement stands
                continue
            r = c.row
            sql.write_measurement(
                con, study_uid=c.study_uid, patient_key=patient_key, scan_date=c.scan_date,
                measurement=c.measurement, model=sql.ModelInfo(r["model_name"], r["model_version"],
                                                               r["weights_sha256"], r["config_sha256"] or None),
                criteria_label=criteria.label,
                registration_id=str(r["registration_id"]) if r["registration_id"] is not None else None,
                track_ids=c.tracks, new_lesions=c.new_lesions, inputs_sha256=c.inputs_sha256)
        result = reassess_patient(con, patient_key=patient_key, criteria=criteria, mode=mode)
        qa = _with_cavity_flags(qa, [(c.study_uid, c.scan_date, c.rc_ml) for c in measured],
                                first_surgery=result.context.surgery_date if result.context else None)
        inputs = list(alert_inputs(result.calls, result.timepoints, patient_key=patient_key,
                                   risks=result.risks, qa=qa,
                                   confirm_interval_weeks=round(criteria.timing.confirm_interval_weeks)))
        called = {c.study_uid for c in result.calls}
        dates = course.study_dates(store, patient_key)
        inputs += [AlertInput(patient_key=patient_key, study_uid=uid, study_date=dates.get(uid),
                              criteria=criteria.label, qa=events)
                   for uid, events in qa.items() if uid not in called]
        alerts = [a for i in inputs for a in evaluate_alerts(i, base_url=base_url)]
        known = course.stored_alert_keys(con, [a.idempotency_key for a in alerts])  # raised before: once, ever
        alerts_sql.enqueue_alerts(con, [a for a in alerts if a.idempotency_key not in known], list(alert_sinks))
        for c in measured:
            ingest_sql.set_study_status(con, c.study_uid, StudyStatus.ASSESSED)
    lines = tuple(f"{c.scan_date} {c.category.value:<17} final {c.final_category.value:<17} {c.reason}"
                  for c in result.calls)
    return PatientReport(patient_key, len(result.calls), len(alerts), lines)


@dataclass(frozen=True, slots=True)
class PatientAssessment:
    patient_key: str
    calls: tuple[ResponseCall, ...]
    risks: Mapping[str, PspEstimate]  # by study_uid, at PRELIM_PD calls
    growth: tuple[GrowthFit, ...]
    timepoints: tuple[Timepoint, ...] = ()  # the inputs of ``calls``, same order
    context: PatientContext | None = None  # surgery, RT end, markers: what ``calls`` were made with


def reassess_patient(con: sql.Con, *, patient_key: str, criteria: Criteria, mode: Mode) -> PatientAssessment:
    """Re-run response, PsP prior and growth for one patient from the stored current measurements,
    new-lesion flags and clinical events, and replace the stored results (caller's transaction)."""
    events = sql.load_clinical_events(con, patient_key)
    context = patient_context(events, patient_key)
    rows = sql.read_current_measurements(con, patient_key)
    lesion_findings = sql.read_lesion_findings(con, patient_key)
    timepoints: list[Timepoint] = []
    previous_date = None
    for r in rows:
        new, became, emerging = lesion_findings.get(r["study_uid"], (False, False, 0.0))
        base = Timepoint(scan_date=r["scan_date"], study_uid=r["study_uid"], spd_mm2=r["spd_mm2"],
                         et_ml=r["et_ml"], netc_ml=r["netc_ml"], snfh_ml=r["snfh_ml"],
                         new_measurable_lesion=new, became_measurable=became, emerging_spd_mm2=emerging)
        timepoints.append(with_clinical_values(base, events, patient_key, previous_scan_date=previous_date))
        previous_date = r["scan_date"]
    timepoints = apply_reader_values(timepoints, reader_sql.read_reader_inputs(con, patient_key))  # issue 32
    calls = assess_patient(timepoints, context, criteria=criteria, mode=mode)
    risks = psp_at_preliminary_pds(calls, timepoints, context=context, criteria=criteria)
    sql.replace_assessment(con, patient_key=patient_key, calls=calls, criteria=criteria, mode=mode, risks=risks,
                           measurement_ids={r["study_uid"]: r["measurement_id"] for r in rows})
    fits = (*fit_growth_since_nadir([(r["scan_date"], r["et_ml"]) for r in rows], label="ET",
                                    growth=criteria.growth),
            *fit_growth_since_nadir([(r["scan_date"], r["snfh_ml"]) for r in rows], label="SNFH",
                                    growth=criteria.growth))
    sql.replace_growth(con, patient_key=patient_key, fits=fits, criteria_label=criteria.label)
    return PatientAssessment(patient_key, tuple(calls), risks, tuple(fits), tuple(timepoints), context)


def _with_cavity_flags(qa: dict[str, QaEvents], scans: list[tuple[str, date, float]], *,
                       first_surgery: date | None) -> dict[str, QaEvents]:
    """``qa`` plus a segmentation flag on each (study UID, date, RC mL) scan that holds a resection
    cavity before the first recorded surgery (``engine.segmentation.sanity.cavity_before_surgery_flag``)."""
    out = dict(qa)
    for uid, scan_date, rc_ml in scans:
        flag = cavity_before_surgery_flag(rc_ml=rc_ml, scan_date=scan_date, first_surgery=first_surgery)
        if flag is not None:
            events = out.get(uid, QaEvents())
            out[uid] = dataclasses.replace(events, segmentation_flags=(*events.segmentation_flags, flag))
    return out


def _qa_events(store: Store, patient_key: str) -> dict[str, QaEvents]:
    """Quarantined studies, failed registrations and segmentation flags of the patient."""
    events: dict[str, QaEvents] = {}
    for uid, reason in course.open_quarantine_reasons(store, patient_key).items():
        events[uid] = QaEvents(quarantine_reason=reason)
    for uid, reason in course.open_registration_failures(store, patient_key).items():
        events[uid] = dataclasses.replace(events.get(uid, QaEvents()), registration_failure=reason)
    for uid, flags in course.segmentation_flags(store, patient_key).items():
        events[uid] = dataclasses.replace(events.get(uid, QaEvents()), segmentation_flags=flags)
    return events


