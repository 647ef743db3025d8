"""Read one study's report content from the store (:class:`ReportContent`), and put the RANO
lines into the study's own DICOM frame.

The lesions' diameter endpoints are stored in RAS+ mm of the grid they were measured on
(``lesions.d1_p0 .. d2_p1``): the study's own T1c grid, or, for a follow-up tracked against the
baseline, the baseline's T1c grid, decided by the assessment's own rule
(:func:`_tracked_on_reference_grid`). In the second case the registration (moving RAS ->
reference RAS) is inverted to bring them back onto the follow-up's T1c, then RAS becomes DICOM's
LPS.
"""

from __future__ import annotations

import json
from datetime import date

import numpy as np

from engine.store import Store
from engine.store import pipeline as pipeline_sql
from engine.store import writeback_report as sql
from engine.types import Label
from engine.writeback.report_content import (
    GrowthReport,
    LesionReport,
    PspReport,
    ReportContent,
    ResponseReport,
)

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def load_report_content(store: Store, study_uid: str) -> ReportContent | None:
    """The content of the study's report; None when the study has no current measurement."""
    study = sql.study_for_report(store, study_uid)
    measurement = sql.current_measurement(store, study_uid)
    if study is None or measurement is None:
        return None
    patient_key = str(study["patient_key"])
    timepoints = sql.assessed_study_uids(store, patient_key)
    order = timepoints.index(study_uid) + 1 if study_uid in timepoints else len(timepoints) + 1
    assessment = sql.latest_assessment(store, study_uid)
    matrix, tracked = None, False
    if measurement.get("registration_id") is not None:
        registration = sql.registration_for_report(store, int(measurement["registration_id"]))
        if registration is not None:
            matrix = np.asarray(json.loads(registration["matrix"]), dtype=float)
            tracked = _tracked_on_reference_grid(registration)
    lesions = tuple(_lesion(row, matrix, tracked=tracked) for row in
                    sql.measurement_lesions(store, str(measurement["measurement_id"])))
    rt_end = pipeline_sql.rt_end_date(store, patient_key)
    scan_date: date | None = study["study_date"]
    response = psp = None
    if assessment is not None:
        response = ResponseReport(
            category=assessment["response"], final_category=assessment["final_response"],
            reason=assessment["reason"], final_reason=assessment["final_reason"],
            criteria=assessment["criteria"], burden=assessment["burden"],
            change_vs_baseline=assessment["change_vs_baseline"],
            change_vs_nadir=assessment["change_vs_nadir"])
        if assessment["psp_probability"] is not None:
            psp = PspReport(assessment["psp_probability"], assessment["psp_low"], assessment["psp_high"],
                            assessment["psp_model"])
    # the growth fits are the patient's, over every timepoint so far: stated by the report of the
    # latest study, the scan they are as of. An earlier study's report leaves them out (once, when
    # a newer scan takes over), instead of restating each newer fit and being rewritten for every
    # new scan of the patient
    latest = order == len(timepoints)
    growth = tuple(GrowthReport(g["label"], g["model"], bool(g["evaluable"]), g["reason"], g["vdt_days"],
                                g["sgr_per_day"]) for g in sql.growth_fits(store, patient_key)) if latest else ()
    return ReportContent(
        patient_key=patient_key, study_uid=study_uid, scan_date=scan_date, timepoint=order,
        is_baseline=bool(assessment is not None and assessment["response"] == "BASELINE"),
        days_since_rt_end=(scan_date - rt_end).days if scan_date and rt_end else None,
        volumes_ml=tuple((label.name, float(measurement[f"{label.name.lower()}_ml"] or 0.0))
                         for label in Label),
        lesions=lesions, response=response, psp=psp, growth=growth,
        model_name=str(study["model_name"]), model_version=str(study["model_version"]),
        weights_sha256=str(study["weights_sha256"] or ""),
        prior_study_uids=tuple(timepoints[: order - 1]),
    )


def _tracked_on_reference_grid(registration: dict) -> bool:
    """Whether ``engine.usecases.course_measurements`` measured the study's lesions on its reference's grid:
    a passed registration into another study (the baseline) with resampled labels, the reference
    earlier in (date, UID) order, so already measured when the study came."""
    resampled = json.loads(registration["resampled"]) if registration["resampled"] else {}
    reference = (registration["reference_date"], registration["reference_study_uid"])
    own = (registration["study_date"], registration["study_uid"])
    return (registration["reference_study_uid"] != registration["study_uid"] and "labels" in resampled
            and None not in (reference[0], own[0]) and reference < own)


def _lesion(row: dict, matrix: np.ndarray | None, *, tracked: bool) -> LesionReport:
    lines = None
    if row.get("d1_p0"):
        ends = [row["d1_p0"], row["d1_p1"]] + ([row["d2_p0"], row["d2_p1"]] if row.get("d2_p1") else [])
        lines = _lines_lps([json.loads(e) for e in ends], matrix, on_reference_grid=tracked)
    return LesionReport(
        lesion_index=int(row["lesion_index"]),
        track_id=None if row["track_id"] is None else int(row["track_id"]),
        volume_ml=float(row["volume_ml"]), d1_mm=float(row["d1_mm"]), d2_mm=float(row["d2_mm"]),
        product_mm2=float(row["product_mm2"]), measurable=bool(row["measurable"]),
        is_target=bool(row["is_target"]), is_new=bool(row["is_new"]),
        d1_line=lines[0] if lines else None,
        d2_line=lines[1] if lines and len(lines) > 1 else None,
    )


def _lines_lps(ras_mm: list, matrix: np.ndarray | None, *, on_reference_grid: bool) -> list | None:
    """The endpoints (d1 start, d1 end, then d2's; RAS mm of the grid measured) as
    ((d1 start, d1 end), (d2 start, d2 end)) in LPS mm of the study's own frame. Points measured
    on the reference's grid come back through the inverse registration ``matrix``; None when there
    is none."""
    points = np.asarray(ras_mm, dtype=float)
    if on_reference_grid:
        if matrix is None:
            return None
        points = (np.c_[points, np.ones(len(points))] @ np.linalg.inv(matrix).T)[:, :3]
    lps = (np.c_[points, np.ones(len(points))] @ _RAS_TO_LPS.T)[:, :3]
    pairs = [tuple(tuple(float(v) for v in p) for p in lps[i:i + 2]) for i in range(0, len(lps) - 1, 2)]
    return pairs
