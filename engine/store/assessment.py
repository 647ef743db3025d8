"""Every SQL statement on the assessment tables (schema in ``schema_assessment``).

Write functions take a DuckDB connection and plain values and open **no** transaction of their
own: the caller wraps one (``with store.transaction() as con: ...``) so that an assessment and
its alerts commit together. Deciding (response, PsP prior, growth) is not done here:
``engine.patient_assessment.reassess_patient`` reads through these functions, runs the pure
engine and writes its results back through them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone

import duckdb

from engine.criteria import Criteria, Mode
from engine.events import ClinicalEvent, EventType
from engine.measurement import StudyMeasurement
from engine.response import ResponseCall
from engine.risk import PspEstimate
from engine.trajectory import GrowthFit

Con = duckdb.DuckDBPyConnection


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What produced a label volume: a segmentation model, or the generator's ground truth."""

    name: str
    version: str
    weights_sha256: str | None = None
    #: the segmentation's config digest (``segmentations.config_sha256``); None for ground truth
    config_sha256: str | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def write_measurement(
    con: Con, *, study_uid: str, patient_key: str, scan_date: date | None, measurement: StudyMeasurement,
    model: ModelInfo, criteria_label: str, registration_id: str | None = None,
    track_ids: Mapping[int, int] | None = None, new_lesions: Iterable[int] = (),
    outside_field: Mapping[int, bool] | None = None,
) -> str:
    """Insert a measurement and its lesions; earlier measurements of the study become superseded.
    Returns the new ``measurement_id``."""
    measurement_id = uuid.uuid4().hex
    now = _now()
    con.execute("UPDATE measurements SET superseded = true WHERE study_uid = ? AND NOT superseded", [study_uid])
    v = measurement.volumes
    con.execute(
        """INSERT INTO measurements (measurement_id, study_uid, patient_key, scan_date, et_ml, netc_ml, snfh_ml,
               rc_ml, tc_ml, wt_ml, spd_mm2, sov_target_ml, sov_all_ml, n_lesions, n_measurable, n_targets,
               slice_thickness_mm, min_diameter_mm, obliquity_deg, model_name, model_version, weights_sha256,
               config_sha256, criteria_version, registration_id, superseded, computed_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, false, ?)""",
        [measurement_id, study_uid, patient_key, scan_date, v.et_ml, v.netc_ml, v.snfh_ml, v.rc_ml, v.tc_ml,
         v.wt_ml, measurement.spd_mm2, measurement.sov_target_ml, measurement.sov_all_ml,
         len(measurement.lesions), measurement.n_measurable, len(measurement.target_indices),
         measurement.slice_thickness_mm, measurement.min_diameter_mm, measurement.obliquity_deg,
         model.name, model.version, model.weights_sha256, model.config_sha256, criteria_label, registration_id,
         now],
    )
    new = set(new_lesions)
    targets = set(measurement.target_indices)
    tracks = dict(track_ids or {})
    fields = dict(outside_field or {})
    rows = [[measurement_id, study_uid, patient_key, l.lesion_index, tracks.get(l.lesion_index), l.volume_ml,
             l.d1_mm, l.d2_mm, l.product_mm2, l.slice_index, l.n_slices, l.measurable,
             l.lesion_index in targets, l.lesion_index in new, fields.get(l.lesion_index), l.note,
             _lines_json(measurement.diameter_lines_ras.get(l.lesion_index), measurement.grid_affine)]
            for l in measurement.lesions]
    if rows:  # diameters_ras: migration 3 (engine.store.writeback), the last column
        con.executemany("INSERT INTO lesions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return measurement_id


def _lines_json(points: Sequence[Sequence[float]] | None, grid_affine: object) -> str | None:
    """``{"ras_mm": [[x, y, z], ...], "grid_affine": 4x4}``: the diameters' endpoints and the grid
    they were measured on (the study's own T1c grid, or the baseline's for a tracked follow-up)."""
    if not points:
        return None
    affine = None if grid_affine is None else [[float(v) for v in row] for row in grid_affine]
    return json.dumps({"ras_mm": [list(p) for p in points], "grid_affine": affine})


def replace_assessment(
    con: Con, *, patient_key: str, calls: Sequence[ResponseCall], criteria: Criteria, mode: Mode,
    risks: Mapping[str, PspEstimate] | None = None, measurement_ids: Mapping[str, str] | None = None,
) -> int:
    """Replace the patient's assessments (and PsP estimates) for this profile and mode.

    ``risks`` and ``measurement_ids`` are keyed by ``study_uid``. Returns the rows written.
    """
    profile, now = criteria.profile.value, _now()
    for table in ("assessments", "psp_risk"):
        con.execute(f"DELETE FROM {table} WHERE patient_key = ? AND profile = ? AND mode = ?",  # noqa: S608
                    [patient_key, profile, mode.value])
    ids = dict(measurement_ids or {})
    rows = [[c.study_uid, patient_key, c.scan_date, profile, mode.value, c.criteria, criteria.version,
          c.category.value, c.final_category.value, c.pd_date, c.reason, c.final_reason or None, c.burden,
          c.baseline_burden, c.baseline_date, c.nadir_burden, c.nadir_date, c.change_vs_baseline,
          c.change_vs_nadir, c.weeks_post_rt, ids.get(c.study_uid), now] for c in calls]
    if rows:
        con.executemany("INSERT INTO assessments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        rows)
    dates = {c.study_uid: c.scan_date for c in calls}
    for study_uid, estimate in (risks or {}).items():
        inputs = {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(estimate.evidence).items()}
        con.execute(
            "INSERT INTO psp_risk VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [study_uid, patient_key, dates.get(study_uid), profile, mode.value, estimate.probability, estimate.low,
             estimate.high, estimate.base_probability, estimate.combined_multiplier, json.dumps(inputs),
             json.dumps([list(m) for m in estimate.multipliers]), estimate.model, estimate.criteria, now],
        )
    return len(calls)


def replace_growth(con: Con, *, patient_key: str, fits: Sequence[GrowthFit], criteria_label: str) -> None:
    """Replace the patient's growth rows (one per label and model)."""
    con.execute("DELETE FROM growth WHERE patient_key = ?", [patient_key])
    now = _now()
    for f in fits:
        con.execute(
            "INSERT INTO growth VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [patient_key, f.label, f.model.value, f.evaluable, f.reason, f.n_points, f.nadir_date, f.nadir_ml,
             f.sgr_per_day, f.vdt_days, json.dumps(dict(f.params)) if f.params else None, f.threshold_ml,
             f.crossing_date, f.crossing_low, f.crossing_high, f.interval_method or None, f.already_crossed,
             criteria_label, now],
        )


def import_clinical_events(con: Con, events: Iterable[ClinicalEvent], *, source: str, entered_by: str) -> int:
    """Replace the events this ``source`` gave earlier for the same patients; returns rows written.
    Events entered from other sources (e.g. the board) are kept."""
    items = list(events)
    for patient_key in sorted({e.patient_id for e in items}):
        con.execute("DELETE FROM clinical_events WHERE patient_key = ? AND source = ?", [patient_key, source])
    now = _now()
    if items:
        con.executemany(
            "INSERT INTO clinical_events VALUES (?, ?, ?, ?, ?, ?, ?)",
            [[e.patient_id, e.event_date, e.event.value, e.value or None, source, entered_by, now] for e in items],
        )
    return len(items)


def load_clinical_events(con: Con, patient_key: str | None = None) -> tuple[ClinicalEvent, ...]:
    """Stored events (all patients, or one), oldest first."""
    sql = "SELECT patient_key, event_date, event, value FROM clinical_events"
    params: list[object] = []
    if patient_key is not None:
        sql += " WHERE patient_key = ?"
        params.append(patient_key)
    rows = con.execute(sql + " ORDER BY patient_key, event_date, event", params).fetchall()
    return tuple(ClinicalEvent(p, d, EventType(e), v or "") for p, d, e, v in rows)


def read_timeline(con: Con, patient_key: str | None = None) -> list[dict]:
    """Rows of the ``timeline`` view, oldest first."""
    sql, params = "SELECT * FROM timeline", []
    if patient_key is not None:
        sql, params = sql + " WHERE patient_key = ?", [patient_key]
    return _dicts(con, sql + " ORDER BY patient_key, scan_date", params)


def read_current_measurements(con: Con, patient_key: str) -> list[dict]:
    """The patient's current (not superseded) measurements, oldest first."""
    return _dicts(con, "SELECT * FROM measurements WHERE patient_key = ? AND NOT superseded ORDER BY scan_date",
                  [patient_key])


def read_lesions(con: Con, measurement_id: str) -> list[dict]:
    return _dicts(con, "SELECT * FROM lesions WHERE measurement_id = ? ORDER BY lesion_index", [measurement_id])


def read_growth(con: Con, patient_key: str) -> list[dict]:
    return _dicts(con, "SELECT * FROM growth WHERE patient_key = ? ORDER BY label, model", [patient_key])


def read_evaluable_growth(con: Con) -> list[dict]:
    """Every patient's evaluable growth fits, by patient, label and model."""
    return _dicts(con, """SELECT patient_key, label, model, vdt_days, crossing_date, reason FROM growth
                          WHERE evaluable ORDER BY patient_key, label, model""", [])


def _dicts(con: Con, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def read_lesion_findings(con: Con, patient_key: str) -> dict[str, tuple[bool, bool, float]]:
    """Per current measurement's study UID: (a new measurable lesion; a lesion non-measurable at
    baseline, its track in the registration's reference study, measurable now; the products of
    both in mm², they enter the assessment, issue 32)."""
    return {
        r[0]: (bool(r[1]), bool(r[2]), float(r[3] or 0.0)) for r in con.execute(
            """SELECT m.study_uid, bool_or(l.is_new AND l.measurable),
                      bool_or(l.measurable AND NOT coalesce(b.measurable, true)),
                      sum(CASE WHEN l.measurable AND (l.is_new OR NOT coalesce(b.measurable, true))
                               THEN l.product_mm2 ELSE 0 END)
               FROM measurements m JOIN lesions l USING (measurement_id)
               LEFT JOIN registrations r ON CAST(r.registration_id AS VARCHAR) = m.registration_id
               LEFT JOIN measurements mb ON mb.study_uid = r.reference_study_uid AND NOT mb.superseded
                                        AND mb.study_uid <> m.study_uid
               LEFT JOIN lesions b ON b.measurement_id = mb.measurement_id AND b.lesion_index = l.track_id
               WHERE m.patient_key = ? AND NOT m.superseded GROUP BY m.study_uid""", [patient_key]).fetchall()}
